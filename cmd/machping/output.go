package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// schemaVersion is the "machping" field of every JSON document. It changes only when a field
// changes meaning or goes away; new fields may be added within a version.
const schemaVersion = 1

// header starts every JSON document.
type header struct {
	Schema  int    `json:"machping"`
	Command string `json:"command"`
}

func newHeader(command string) header { return header{Schema: schemaVersion, Command: command} }

// output is where a command writes: text or JSON on stdout, progress and text diagnostics on
// stderr.
type output struct {
	stdout, stderr io.Writer
	json           bool
	command        string
	mu             sync.Mutex // serialises lines from concurrent goroutines (serve's handler)
}

// printf writes a text line (ignored in JSON mode).
func (o *output) printf(format string, args ...any) {
	if o.json {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.stdout, format, args...)
}

// progress writes to stderr, in both modes: it is for the person watching.
func (o *output) progress(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.stderr, format, args...)
}

// emit writes v as one line of JSON and returns code.
func (o *output) emit(v any, code int) int {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(o.stderr, "machping: encoding JSON:", err)
		return exitError
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.stdout, "%s\n", b)
	return code
}

// errorDoc is the JSON document of a command that failed.
type errorDoc struct {
	header
	Error diagnosis `json:"error"`
}

// fail reports a failure that ends the command: in words on stderr, or as an error document.
func (o *output) fail(d diagnosis, code int) int {
	if o.json {
		return o.emit(errorDoc{header: newHeader(o.command), Error: d}, code)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	d.write(o.stderr, "machping: ")
	return code
}

// usageError reports bad arguments.
func (o *output) usageError(format string, args ...any) int {
	return o.fail(diagnosis{Message: fmt.Sprintf(format, args...),
		Hints: []string{fmt.Sprintf("'machping help %s' shows the usage", o.command)}}, exitError)
}
