package peer

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseError is an expression that Parse refuses: which item (predicate) and why. It wraps
// ErrInvalidRequirement, or the error New gave for a well-formed item that cannot be checked
// here (a code-signing requirement off macOS: errors.ErrUnsupported).
type ParseError struct {
	Item   string // the offending item, trimmed; empty for an empty expression
	Reason string
	Err    error
}

func (e *ParseError) Error() string {
	if e.Item == "" {
		return "peer: invalid requirement expression: " + e.Reason
	}
	return fmt.Sprintf("peer: invalid requirement expression: %q: %s", e.Item, e.Reason)
}

// Unwrap returns the cause: ErrInvalidRequirement for a malformed expression.
func (e *ParseError) Unwrap() error { return e.Err }

// Parse makes a Requirement of a text expression, as machping's --require takes one: items
// separated by ';', each KEY=VALUE, all of which a peer must meet. Space around items, keys and
// values is ignored.
//
//	uid=501          the effective user is 501; uid=0,501: one of 0 and 501
//	gid=20           the effective group is 20; gid=20,80: one of them
//	pid=123          the pid is 123
//	exe=/usr/bin/x   the executable is /usr/bin/x (an absolute path)
//	cs=REQ           the code satisfies the Apple code-signing requirement REQ, the rest of the
//	                 item (macOS only: elsewhere Parse fails, as New does)
//
// For example `uid=501; exe=/usr/local/libexec/helper`. A value cannot hold ';' (an executable
// path or a code-signing requirement with one needs New). Each key may appear once. Every error
// is a *ParseError naming the item, wrapping ErrInvalidRequirement.
func Parse(expr string) (*Requirement, error) {
	preds, items, err := parsePredicates(expr)
	if err != nil {
		return nil, err
	}
	r, err := New(preds...)
	if err != nil {
		// The syntax checks leave New only the code-signing requirement to refuse.
		e := &ParseError{Reason: err.Error(), Err: err}
		for i, p := range preds {
			if _, ok := p.(*codePred); ok {
				e.Item = items[i]
			}
		}
		return nil, e
	}
	return r, nil
}

// parsePredicates parses expr's syntax, without building (and so without checking on the host)
// the predicates; items[i] is the text of preds[i].
func parsePredicates(expr string) (preds []Predicate, items []string, err error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil, &ParseError{Reason: "empty: give at least one KEY=VALUE", Err: ErrInvalidRequirement}
	}
	seen := map[string]bool{}
	for item := range strings.SplitSeq(expr, ";") {
		item = strings.TrimSpace(item)
		bad := func(format string, a ...any) error {
			return &ParseError{Item: item, Reason: fmt.Sprintf(format, a...), Err: ErrInvalidRequirement}
		}
		if item == "" {
			return nil, nil, bad("an empty item (two ';' in a row, or one at an end)")
		}
		key, value, ok := strings.Cut(item, "=")
		if !ok {
			return nil, nil, bad("no '=': an item is KEY=VALUE, KEY one of uid, gid, pid, exe, cs")
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if seen[key] {
			return nil, nil, bad("%s given twice (list alternatives in one item: uid=0,501)", key)
		}
		seen[key] = true
		items = append(items, item)
		switch key {
		case "uid", "gid":
			var ids []uint32
			for f := range strings.SplitSeq(value, ",") {
				id, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
				if err != nil {
					return nil, nil, bad("%s takes decimal ids from 0 to 4294967295, separated by ','", key)
				}
				ids = append(ids, uint32(id))
			}
			if key == "uid" {
				preds = append(preds, UID(ids...))
			} else {
				preds = append(preds, GID(ids...))
			}
		case "pid":
			pid, err := strconv.ParseInt(value, 10, 32)
			if err != nil || pid <= 0 {
				return nil, nil, bad("pid takes one process id, a decimal number from 1 to 2147483647")
			}
			preds = append(preds, PID(int(pid)))
		case "exe":
			if !strings.HasPrefix(value, "/") {
				return nil, nil, bad("exe takes an absolute path")
			}
			preds = append(preds, Executable(value))
		case "cs":
			if value == "" {
				return nil, nil, bad("cs takes a code-signing requirement, e.g. cs=identifier \"com.example.helper\"")
			}
			preds = append(preds, CodeSigning(value))
		default:
			return nil, nil, bad("unknown key %q: use uid, gid, pid, exe or cs", key)
		}
	}
	return preds, items, nil
}

// Expr gives the requirement in Parse's syntax: Parse(r.Expr()) makes an equivalent
// requirement. Its items are in String's order (the predicates on the token first).
func (r *Requirement) Expr() string {
	var items []string
	for _, p := range append(append([]Predicate{}, r.token...), r.proc...) {
		items = append(items, predicateExpr(p))
	}
	return strings.Join(items, "; ")
}

func predicateExpr(p Predicate) string {
	switch p := p.(type) {
	case pidPred:
		return "pid=" + strconv.Itoa(int(p))
	case idPred:
		ids := make([]string, len(p.ids))
		for i, id := range p.ids {
			ids[i] = strconv.FormatUint(uint64(id), 10)
		}
		return p.what + "=" + strings.Join(ids, ",")
	case exePred:
		return "exe=" + string(p)
	case *codePred:
		return "cs=" + p.text
	}
	return p.String()
}
