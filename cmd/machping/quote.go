package main

import "strings"

// shellQuote quotes s for a POSIX shell when it needs it, so that a command machping suggests
// can be pasted as it is printed: a word of only safe characters stays bare, anything else goes
// in single quotes, where each single quote is closed, escaped with a backslash and reopened.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellCommand is a machping command line with each argument quoted as a shell needs it.
func shellCommand(args ...string) string {
	words := []string{"machping"}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}
