// Command testdigest reads `go test -json` on stdin, prints it as `go test -v`
// would, and ends with a short account of what failed: the failed tests and
// their failure messages, gathered from among the minutes of interleaved log
// lines of the e2e tests, where the tail of a CI log shows them.
//
//	go test -json ./scripts/e2e/ | go run ./scripts/testdigest -src scripts/e2e
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	src := flag.String("src", ".", "the tests' source dir (tells failure messages from log lines)")
	mark := flag.String("mark", "", "repeat the lines that contain this, from any test, in the summary")
	flag.Parse()
	d := newDigest(os.Stdout, *src, *mark)
	if err := d.feed(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testdigest:", err)
		os.Exit(1)
	}
	if s := d.summary(); s != "" {
		fmt.Print(s)
	}
}
