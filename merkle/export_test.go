package merkle

// NewAuditSpans is NewAudit keeping at most maxSpans span hashes, so that
// tests reach FirstBad's re-reading with few records.
func NewAuditSpans(log string, maxSpans int) *Audit { return newAudit(log, maxSpans) }

// Spans returns how many span hashes a keeps, and their level.
func (a *Audit) Spans() (n, level int) { return len(a.spans), a.level }

// Edge returns how many hashes a's right edge holds.
func (a *Audit) Edge() int { return len(a.right) }
