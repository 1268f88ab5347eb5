package bytesize

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"64", 64, true},
		{"64B", 64, true},
		{"64KiB", 64 << 10, true},
		{"16MiB", 16 << 20, true},
		{"16M", 16 << 20, true},
		{"1GiB", 1 << 30, true},
		{"2KB", 2000, true},
		{" 8 KiB ", 8 << 10, true},
		{"", 0, false},
		{"KiB", 0, false},
		{"-1", 0, false},
		{"1.5MiB", 0, false},
		{"99999999999999999999GiB", 0, false},
		{"17179869184GiB", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.ok && (err != nil || got != tc.want) {
				t.Fatalf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
			if !tc.ok && err == nil {
				t.Fatalf("Parse(%q) = %d, want an error", tc.in, got)
			}
		})
	}
	for _, n := range []uint64{0, 1, 1000, 1 << 10, 3 << 20, 5 << 30} {
		if got, err := Parse(Format(n)); err != nil || got != n {
			t.Fatalf("Parse(Format(%d)) = %d, %v", n, got, err)
		}
	}
}
