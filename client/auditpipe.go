package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/trail-audit/trail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// batchLen is how many records a batch of the audit pipeline holds: enough
// to make the hand-offs between goroutines rare.
const batchLen = 1024

// A batch is a run of export records on its way through the audit
// pipeline: read and checked, then hashed, then added to the tree.
type batch struct {
	buf    []byte // the records' bytes, back to back
	ends   []int  // where each record ends in buf
	hashes []tlog.Hash
	err    error // after the records: why reading stopped (io.EOF: the end)
}

// rehash adds the records of an export, read from br, to audit, which
// must be empty, up to limit records. Re-hashing a record costs more than
// reading and checking it, so the work is split over four goroutines:
// one reads and checks (dense seqs), two hash leaves, and the caller's
// builds the tree, which is cheap. It returns the first error in seq order.
func rehash(ctx context.Context, br *bufio.Reader, audit *merkle.Audit, limit int64, progress func()) error {
	free := make(chan *batch, 4)
	for range cap(free) {
		free <- &batch{buf: make([]byte, 0, 1<<20), ends: make([]int, 0, batchLen)}
	}
	read, hashed := make(chan *batch, 2), make(chan *batch, 2)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() { readBatches(ctx, br, audit, limit, free, read, done) })
	wg.Go(func() {
		defer close(hashed)
		for b := range read {
			// Two goroutines hash the halves of a batch: hashing is most
			// of an audit's CPU, and this stage would otherwise hold the
			// pipeline to one core.
			b.hashes = slices.Grow(b.hashes[:0], len(b.ends))[:len(b.ends)]
			half := len(b.ends) / 2
			var hw sync.WaitGroup
			hw.Go(func() { b.hashRange(half, len(b.ends)) })
			b.hashRange(0, half)
			hw.Wait()
			select {
			case hashed <- b:
			case <-done:
				return
			}
		}
	})
	for b := range hashed {
		for _, h := range b.hashes {
			audit.AddLeaf(h)
		}
		progress()
		if b.err != nil {
			if b.err == io.EOF {
				return nil
			}
			return b.err
		}
		free <- b
	}
	return nil
}

// hashRange sets the leaf hashes of records [from, to) of b.
func (b *batch) hashRange(from, to int) {
	start := 0
	if from > 0 {
		start = b.ends[from-1]
	}
	for i := from; i < to; i++ {
		b.hashes[i] = tlog.RecordHash(b.buf[start:b.ends[i]])
		start = b.ends[i]
	}
}

// readBatches is the pipeline's first stage: it reads the records of an
// export into batches taken from free, checks that each is the record at
// its seq, and sends the batches to out. The last batch carries the error
// that stopped it.
func readBatches(ctx context.Context, br *bufio.Reader, audit *merkle.Audit, limit int64, free <-chan *batch, out chan<- *batch, done <-chan struct{}) {
	defer close(out)
	seq := int64(0)
	for {
		var b *batch
		select {
		case b = <-free:
		case <-done:
			return
		}
		b.buf, b.ends, b.err = b.buf[:0], b.ends[:0], ctx.Err()
		for b.err == nil && len(b.ends) < batchLen {
			rec, err := nextRecord(br)
			switch {
			case err != nil:
				b.err = err
			case seq >= limit:
				b.err = &merkle.AuditError{Seq: seq, Reason: fmt.Sprintf("the export holds more records than its checkpoint covers (%d)", limit)}
			default:
				b.err = audit.CheckRecord(rec, seq)
			}
			if b.err == nil {
				b.buf = append(b.buf, rec...)
				b.ends = append(b.ends, len(b.buf))
				seq++
			}
		}
		select {
		case out <- b:
		case <-done:
			return
		}
		if b.err != nil {
			return
		}
	}
}
