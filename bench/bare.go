package main

import (
	"fmt"
	"os"

	"github.com/valyala/fasthttp"
)

// serveBare is the baseline: a bare fasthttp server that reads each
// request and answers 200, nothing else. It runs as its own process (the
// harness re-executes itself), like the hub, so both are measured the
// same way.
func serveBare(addr string) {
	ok := []byte("ok")
	err := fasthttp.ListenAndServe(addr, func(c *fasthttp.RequestCtx) {
		_ = c.PostBody()
		c.SetStatusCode(200)
		c.SetBody(ok)
	})
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
