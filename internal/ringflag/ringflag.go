// Package ringflag holds the command-line flags that cmd/producer and
// cmd/consumer share: where the ring is, and how to wait.
package ringflag

import (
	"errors"
	"flag"
	"fmt"

	"github.com/shmring/shmring"
)

// DefaultName is the ring the demo commands use when given neither -name
// nor -path.
const DefaultName = "shmring-demo"

// Location names a ring: a name in /dev/shm or a file path.
type Location struct {
	Name string
	Path string
}

// Register adds -name and -path to fs.
func (l *Location) Register(fs *flag.FlagSet) {
	fs.StringVar(&l.Name, "name", DefaultName, "ring `NAME` in /dev/shm")
	fs.StringVar(&l.Path, "path", "", "file-backed ring at `FILE` (instead of -name)")
}

// String names the ring for messages.
func (l Location) String() string {
	if l.Path != "" {
		return l.Path
	}
	return fmt.Sprintf("%q", l.Name)
}

// Create creates the ring.
func (l Location) Create(opts ...shmring.Option) (*shmring.Ring, error) {
	if l.Path != "" {
		return shmring.CreateFile(l.Path, opts...)
	}
	return shmring.Create(l.Name, opts...)
}

// Open opens the ring.
func (l Location) Open(opts ...shmring.Option) (*shmring.Ring, error) {
	if l.Path != "" {
		return shmring.OpenFile(l.Path, opts...)
	}
	return shmring.Open(l.Name, opts...)
}

// Policy is a flag.Value naming a wait policy: default, spin or park.
type Policy struct{ shmring.WaitPolicy }

// Register adds -policy to fs.
func (p *Policy) Register(fs *flag.FlagSet) {
	p.WaitPolicy = shmring.DefaultWaitPolicy
	fs.Var(p, "policy", "how to wait: `default` (spin briefly, then sleep), spin (never sleep) or park (sleep at once)")
}

func (p *Policy) String() string {
	switch p.WaitPolicy {
	case shmring.SpinWaitPolicy:
		return "spin"
	case shmring.WaitPolicy{}:
		return "park"
	}
	return "default"
}

// Set parses a policy name.
func (p *Policy) Set(s string) error {
	switch s {
	case "default":
		p.WaitPolicy = shmring.DefaultWaitPolicy
	case "spin":
		p.WaitPolicy = shmring.SpinWaitPolicy
	case "park":
		p.WaitPolicy = shmring.WaitPolicy{}
	default:
		return errors.New("want default, spin or park")
	}
	return nil
}
