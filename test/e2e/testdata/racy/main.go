// Command racy has one data race, to prove the e2e race check catches it.
package main

import (
	"fmt"
	"time"
)

func main() {
	n := 0
	done := make(chan struct{})
	go func() { n++; close(done) }()
	n++
	<-done
	fmt.Println("still running", n)
	time.Sleep(5 * time.Second) // a halted child never gets here
}
