//go:build !unix

package main

import "time"

// selfCPU is not measured here: getrusage is Unix's.
func selfCPU() (time.Duration, bool) { return 0, false }
