package httpapi

import (
	"net/http"
	"strconv"

	"github.com/trail-audit/trail"
)

// receiptSize is about the length of one encoded receipt: a UUID, a short
// log name, a seq, a time and a base64 hash.
const receiptSize = 180

// writeReceipts answers POST /logs: the receipt of a single event, or
// {"receipts": [...]} for a batch. The answer is built by appending bytes,
// since a batch of 1,000 events has 1,000 receipts to encode; it reads as
// writeJSON's encoding would.
func writeReceipts(w http.ResponseWriter, status int, receipts []trail.Receipt, single bool) {
	b := make([]byte, 0, 16+receiptSize*len(receipts))
	if single {
		b = receipts[0].AppendJSON(b)
	} else {
		b = append(b, `{"receipts":[`...)
		for i := range receipts {
			if i > 0 {
				b = append(b, ',')
			}
			b = receipts[i].AppendJSON(b)
		}
		b = append(b, ']', '}')
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
