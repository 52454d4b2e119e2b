package main

import (
	"os"
	"runtime"
	"slices"
	"strconv"
)

var osGetpid = os.Getpid

// openFDs lists this process's open file descriptors: /proc/self/fd on Linux (with what each
// refers to), /dev/fd on macOS.
func openFDs() []fdInfo {
	dir := "/dev/fd"
	if runtime.GOOS == "linux" {
		dir = "/proc/self/fd"
	}
	f, err := os.Open(dir)
	if err != nil {
		return []fdInfo{}
	}
	entries, _ := f.Readdirnames(-1)
	own := int(f.Fd())
	fds := []fdInfo{}
	for _, e := range entries {
		fd, err := strconv.Atoi(e)
		if err != nil || fd == own {
			continue
		}
		info := fdInfo{FD: fd}
		if target, err := os.Readlink(dir + "/" + e); err == nil {
			info.Target = target
		}
		fds = append(fds, info)
	}
	f.Close()
	slices.SortFunc(fds, func(a, b fdInfo) int { return a.FD - b.FD })
	return fds
}
