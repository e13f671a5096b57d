package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/cgroup"
)

// host describes the machine a table came from.
type host struct {
	cpu     string
	cores   int
	memory  string
	kernel  string
	distro  string
	cgroups cgroup.Mode
	date    time.Time
}

func describeHost(mode cgroup.Mode) host {
	h := host{cpu: "unknown CPU", cores: runtime.NumCPU(), kernel: "unknown", distro: "unknown", cgroups: mode, date: time.Now().UTC()}
	if v := firstField("/proc/cpuinfo", "model name", ':'); v != "" {
		h.cpu = v
	}
	if v := firstField("/proc/meminfo", "MemTotal", ':'); v != "" {
		var kb int64
		if _, err := fmt.Sscanf(v, "%d kB", &kb); err == nil {
			h.memory = fmt.Sprintf("%d GiB", (kb+1<<19)>>20)
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.kernel = unix.ByteSliceToString(u.Release[:])
	}
	if v := firstField("/etc/os-release", "PRETTY_NAME", '='); v != "" {
		h.distro = strings.Trim(v, `"`)
	}
	return h
}

func (h host) String() string {
	return fmt.Sprintf("%s, %d cores, %s, Linux %s, %s, cgroup %s, %s", h.cpu, h.cores, h.memory, h.kernel, h.distro, h.cgroups, h.date.Format("2006-01-02 15:04 UTC"))
}

// firstField is the value of the first "key<sep> value" line of file.
func firstField(file, key string, sep byte) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), string(sep))
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage is the 1-minute load average, as /proc/loadavg says it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// processCPU is the user and system time process pid has used, all its
// threads together, in clock ticks (10 ms steps): measure it across
// hundreds of operations.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The fields after the command name (which may hold anything) start
	// after its last ')'; utime and stime are the 14th and 15th.
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	var utime, stime int64
	if _, err := fmt.Sscan(fields[11], &utime); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat utime: %w", pid, err)
	}
	if _, err := fmt.Sscan(fields[12], &stime); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat stime: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ
}

// rss is process pid's resident memory in bytes.
func rss(pid int) (int64, error) {
	v := firstField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS", ':')
	var kb int64
	if _, err := fmt.Sscanf(v, "%d kB", &kb); err != nil {
		return 0, fmt.Errorf("VmRSS of %d: %q: %w", pid, v, err)
	}
	return kb << 10, nil
}

// childrenCPU is the CPU time of this process's waited-for children and
// their own waited-for descendants.
func childrenCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
