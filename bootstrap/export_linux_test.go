package bootstrap

// SetRandomSuffix replaces RegisterUnique's suffix source until the returned func restores it.
func SetRandomSuffix(f func() string) (restore func()) {
	old := randomSuffix
	randomSuffix = f
	return func() { randomSuffix = old }
}

// NamePaths exposes the emulated namespace's file names for a name, for tests that play a
// hostile or dead owner.
func NamePaths(name string, pid int) (sock, lock string, err error) {
	_, sock, lock, err = paths(name, pid)
	return sock, lock, err
}
