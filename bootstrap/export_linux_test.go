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

// FailLoad makes the Darwin logic's binding of libSystem fail with err until the returned func
// restores it; ok is false when this process does not run the Darwin logic.
func FailLoad(err error) (restore func(), ok bool) {
	l, isLaunchd := ns.(launchd)
	if !isLaunchd {
		return nil, false
	}
	failing := l
	failing.load = func() error { return err }
	ns = failing
	return func() { ns = l }, true
}
