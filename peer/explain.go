package peer

import (
	"fmt"

	"github.com/machport/machport/mach"
)

// Verdict is one predicate's answer for one peer.
type Verdict struct {
	Predicate string // the predicate as String gives it
	Err       error  // nil: met; else a *CheckError, as Check would give
}

// Explain checks each predicate on its own and gives every verdict, in String's order, for
// debugging a requirement (Check stops at the first failure). It looks the process up afresh and
// neither reads nor fills the verdict cache, so it never changes what Check answers.
func (r *Requirement) Explain(tok mach.AuditToken) []Verdict {
	var out []Verdict
	fail := func(p Predicate, got string, err error) {
		out = append(out, Verdict{Predicate: p.String(), Err: &CheckError{Predicate: p.String(), PID: tok.PID(), Got: got, Err: err}})
	}
	all := append(append([]Predicate{}, r.token...), r.proc...)
	if tok.IsKernel() {
		for _, p := range all {
			fail(p, "", ErrProcessGone)
		}
		return out
	}
	for _, p := range r.token {
		if got, err := p.check(tok, nil); err != nil {
			fail(p, got, err)
		} else {
			out = append(out, Verdict{Predicate: p.String()})
		}
	}
	if len(r.proc) == 0 {
		return out
	}
	proc, err := r.lookupUncached(tok)
	if err != nil {
		for _, p := range r.proc {
			fail(p, "", fmt.Errorf("%w: %w", ErrProcessGone, err))
		}
		return out
	}
	if proc.code != nil {
		defer proc.code.close()
	}
	for _, p := range r.proc {
		if got, err := p.check(tok, proc); err != nil {
			fail(p, got, err)
		} else {
			out = append(out, Verdict{Predicate: p.String()})
		}
	}
	return out
}

// lookupUncached looks up the process tok names, as Check does on a cache miss.
func (r *Requirement) lookupUncached(tok mach.AuditToken) (*process, error) {
	version, err := r.sys.version(tok)
	if err != nil {
		return nil, err
	}
	return r.sys.lookup(tok, version, len(r.codes) > 0)
}
