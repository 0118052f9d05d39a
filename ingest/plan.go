package ingest

import "github.com/trail-audit/trail"

// An outcome is what one request of a group gets once the group's new
// entries are stored.
type outcome struct {
	refs    []*trail.Entry // the entry behind each event's receipt
	created bool           // at least one event is new
	err     error          // ECONFLICT: nothing of the request is stored
}

// result returns the request's answer.
func (o *outcome) result() response {
	if o.err != nil {
		return response{err: o.err}
	}
	res := &trail.Result{Receipts: make([]trail.Receipt, len(o.refs)), Created: o.created}
	for i, e := range o.refs {
		res.Receipts[i] = e.Receipt()
	}
	return response{res: res}
}

// plan decides what a group of requests does to log, whose size is base,
// given stored, the entries already stored under the group's client ids.
// It is the one place that decides idempotency: an event whose id is
// stored, or taken by an earlier request of the group, is a replay if its
// digest is the same (its receipt is the earlier entry's) and a conflict
// if not; so is a repeat inside one request. A conflict refuses its whole
// request, and none of that request's events is stored or taken. Every
// other event becomes a new entry, with dense seqs from base in group
// order. plan returns the entries to append and one outcome per request.
//
// The store's unique id constraint is the last line of defence, not a
// second decision: if a racing writer stores one of the ids between the
// lookup and the append, the store refuses the append with
// trail.ErrDuplicateID and the writer looks up and plans again (see
// Ingester.commitRetrying). Only a store that keeps refusing makes the
// group fail, with 503 and nothing stored: a retry replans.
func plan(group [][]*trail.Prepared, stored map[string]*trail.Entry, base int64, log string) ([]*trail.Entry, []outcome) {
	outs := make([]outcome, len(group))
	var entries []*trail.Entry
	taken := make(map[string]*trail.Entry) // ids this group stores
	for i, preps := range group {
		mine, o := planRequest(preps, stored, taken, base+int64(len(entries)), log)
		outs[i] = o
		if o.err != nil {
			continue
		}
		for _, e := range mine {
			taken[e.ID] = e
		}
		entries = append(entries, mine...)
	}
	return entries, outs
}

// planRequest plans one request whose new entries start at seq next.
// Its ids join taken only if the whole request is accepted.
func planRequest(preps []*trail.Prepared, stored, taken map[string]*trail.Entry, next int64, log string) ([]*trail.Entry, outcome) {
	o := outcome{refs: make([]*trail.Entry, len(preps))}
	var mine []*trail.Entry
	var own map[string]*trail.Entry // ids repeated inside the request
	for j, p := range preps {
		prev := earlier(p, stored, taken, own)
		if prev == nil {
			e := p.Entry(log, next+int64(len(mine)))
			mine = append(mine, e)
			o.refs[j] = e
			if p.ClientID {
				if own == nil {
					own = make(map[string]*trail.Entry)
				}
				own[p.ID] = e
			}
			continue
		}
		if prev.Digest != p.Digest {
			if prev == own[p.ID] {
				return nil, outcome{err: trail.Errorf(trail.ECONFLICT, "id %q appears twice in the batch with different content; nothing was stored", p.ID)}
			}
			return nil, outcome{err: conflict(p, prev)}
		}
		o.refs[j] = prev
	}
	o.created = len(mine) > 0
	return mine, o
}

// conflict is the error of p, whose id prev already holds with other
// content. It names prev's place only to a writer of prev's tenant: ids are
// unique across tenants, so a tenant-bound key can learn that an id is
// taken (docs/SECURITY.md), but not where another tenant's record lies.
func conflict(p *trail.Prepared, prev *trail.Entry) error {
	if prev.Tenant != p.Tenant {
		return trail.Errorf(trail.ECONFLICT, "id %q is already taken; choose a new one", p.ID)
	}
	return trail.Errorf(trail.ECONFLICT, "id %q is already stored with other content (log %s, seq %d); ids are forever, choose a new one", p.ID, prev.Log, prev.Seq)
}

// earlier returns the entry that already holds p's id, stored or taken
// earlier in the group or the request, or nil. Server-made ids are new by
// construction.
func earlier(p *trail.Prepared, stored, taken, own map[string]*trail.Entry) *trail.Entry {
	if !p.ClientID {
		return nil
	}
	for _, m := range []map[string]*trail.Entry{stored, taken, own} {
		if prev := m[p.ID]; prev != nil {
			return prev
		}
	}
	return nil
}

// clientIDs returns the ids that the group's producers chose, which are
// the ones that may be stored already.
func clientIDs(group [][]*trail.Prepared) []string {
	var ids []string
	for _, preps := range group {
		for _, p := range preps {
			if p.ClientID {
				ids = append(ids, p.ID)
			}
		}
	}
	return ids
}
