package httpapi

import "testing"

// TestHoldReserve fills a budget with large holds: they stop an eighth
// short of it, and small holds (a single event, a small page) use the rest.
func TestHoldReserve(t *testing.T) {
	b := &budget{max: 1 << 20}
	large := hold{b: b}
	for large.take(smallHold) {
	}
	if want := b.max - b.max/8; large.n != want {
		t.Fatalf("large hold: got %d bytes, want %d (the budget less an eighth)", large.n, want)
	}
	other := hold{b: b}
	if other.take(smallHold + 1) {
		t.Fatalf("another large hold: got %d bytes, want none", other.n)
	}
	var small []hold
	for range 2 {
		h := hold{b: b}
		if !h.take(smallHold) {
			t.Fatalf("small hold %d: got refused with %d of %d used, want room in the reserve", len(small), b.used.Load(), b.max)
		}
		small = append(small, h)
	}
	if h := (hold{b: b}); h.take(1) {
		t.Fatalf("with the budget full: got a take, want none")
	}
	large.release()
	for _, h := range small {
		h.release()
	}
	if u := b.used.Load(); u != 0 {
		t.Fatalf("after release: got %d bytes used, want 0", u)
	}
}
