// Command callpath prints where the time of gRPC calls between two
// processes goes, from an execution trace of each taken over the same
// calls (see package callpath):
//
//	cd examples/grpc
//	ECHO_TRACE=/tmp go test -run - -bench 'Unary64Process$' -benchtime 5000x
//	go run ./cmd/callpath -calls 5000 /tmp/client-shmring.trace /tmp/server-shmring.trace
//
// For calls of another kind, name the client's calling function (-root)
// and the writer of the calls (-writer): for net/http,
// -root 'net/http.(*Client).Do' -writer net/http.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shmring/shmring/examples/grpc/callpath"
)

func main() {
	calls := flag.Int("calls", 0, "calls the traces cover, for figures per call")
	root := flag.String("root", callpath.GRPCRoot, "a function on the stack of the client's calling goroutine")
	writer := flag.String("writer", callpath.GRPCWriter, "a function or package on the stack of every write that carries the calls (net/http: \"net/http\")")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: callpath -calls N CLIENT.trace SERVER.trace")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 || *calls <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *root, *writer, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "callpath:", err)
		os.Exit(1)
	}
}

func run(client, server, root, writer string, calls int) error {
	r, err := callpath.AnalyzeFiles(client, server, root, writer)
	if err != nil {
		return err
	}
	r.Print(os.Stdout, calls)
	return nil
}
