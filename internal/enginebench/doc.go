// Package enginebench compares the embedded stores side by side, in one
// process and one run, so that a noisy machine affects both alike:
//
//	go test -run x -bench . ./internal/enginebench/
//
// It has no code of its own: it is the one place that may import both
// embedded stores (adapters never import each other).
package enginebench
