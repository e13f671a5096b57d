package shim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The sandbox's seccomp filter is Docker's default profile (moby's, for a
// container without capabilities) with a few more refusals, compiled to
// classic BPF by go-seccomp-bpf. The kernel runs every filter a process
// has and takes the strictest answer, so the profile is a stack of
// programs:
//
//   - the base, which PID 1 installs on itself once, so every process of
//     the sandbox inherits it at no cost per command: the allowlist (which
//     still allows clone3, for PID 1 to fork a supervisor into a cgroup),
//     then one program per syscall whose arguments are checked (clone's
//     namespace flags, socket's domain, personality's value), each
//     refusing what its rules do not allow;
//   - the project guard, hand-written like the architecture guard: no
//     ioctl or syscall that changes a file's quota project (see
//     projectGuard);
//   - the layer, which each supervisor adds before forking its command:
//     clone3 fails with ENOSYS, so that glibc falls back to clone, whose
//     flags the base can see (clone3 passes them in memory).
//
// One argument check per program is not only clarity: go-seccomp-bpf does
// not reload the syscall number after an argument check, so a check is
// only sound as the last one of its program.
//
// A kernel compiles each filter on install at a cost that grows with its
// length (about 5 µs an instruction on the test machine), which is why
// the per-command layer holds one rule.

// seccompProgram compiles the programs once per process: they depend only
// on this build and the architecture.
var seccompProgram = sync.OnceValues(compileSeccomp)

// SeccompProgram returns the seccomp file the agent reads at start: the
// base and the layer program (see AgentFiles).
func SeccompProgram() ([]byte, error) {
	b, err := seccompProgram()
	return bytes.Clone(b), err
}

// SeccompFile returns a sealed memory file holding SeccompProgram, for
// AgentFiles. The caller closes it once the sandbox has started.
func SeccompFile() (*os.File, error) {
	prog, err := seccompProgram()
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("sandboxd-seccomp", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("seccomp file: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sandboxd-seccomp")
	if _, err := f.Write(prog); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("seccomp file: %w", err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("seal seccomp file: %w", err)
	}
	return f, nil
}

// deniedSyscalls are refused (EPERM) ahead of Docker's rules: the
// hardening list, so that it holds whatever that profile becomes (today
// it allows only name_to_handle_at of these to a container without
// capabilities).
func deniedSyscalls() []string {
	return []string{
		"add_key", "request_key", "keyctl",
		"unshare", "setns",
		"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
		"fsmount", "fspick", "mount_setattr",
		"bpf", "perf_event_open", "userfaultfd",
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
		"open_by_handle_at", "name_to_handle_at",
		"reboot", "swapon", "swapoff", "acct", "iopl", "ioperm", "quotactl", "quotactl_fd",
		"lookup_dcookie", "io_uring_setup", "io_uring_enter", "io_uring_register",
	}
}

// namespaceFlags are the clone flags that make a namespace.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

func errnoAction(errno unix.Errno) seccomp.Action { return seccomp.ActionErrno | seccomp.Action(errno) }

func compileSeccomp() ([]byte, error) {
	base, layer, err := seccompPrograms()
	if err != nil {
		return nil, err
	}
	return encodeSeccomp(base, layer)
}

// seccompPrograms assembles the base and the layer programs.
func seccompPrograms() (base, layer [][]bpf.Instruction, err error) {
	a, err := arch.GetInfo("")
	if err != nil {
		return nil, nil, fmt.Errorf("seccomp: %w", err)
	}
	policies, err := basePolicies(a)
	if err != nil {
		return nil, nil, err
	}
	policies = append(policies, seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls:      []seccomp.SyscallGroup{{Names: []string{"clone3"}, Action: errnoAction(unix.ENOSYS)}},
	})
	for i, p := range policies {
		prog, err := p.Assemble()
		if err != nil {
			return nil, nil, fmt.Errorf("seccomp program %d: %w", i, err)
		}
		if i == 0 {
			prog = append(archGuard(a), prog...)
		}
		base = append(base, prog)
	}
	layer = base[len(base)-1:]
	base = append(base[:len(base)-1:len(base)-1], projectGuard(a))
	return base, layer, nil
}

// Requests that change a file's project id or its inheritance, which
// project quotas leave to the file's owner outside a user namespace: with
// one, a sandbox moves its files to another project (or, clearing
// FS_PROJINHERIT_FL on a directory of its own, its new files to project 0)
// and escapes every disk limit. Nothing a sandbox needs: the read side
// (FS_IOC_FSGETXATTR, FS_IOC_GETFLAGS, file_getattr) stays.
const (
	fsIocFSSetXattr = 0x401c5820 // FS_IOC_FSSETXATTR, _IOW('X', 32, struct fsxattr)
	fsIocSetFlags   = 0x40086602 // FS_IOC_SETFLAGS, _IOW('f', 2, long)
	fsIoc32SetFlags = 0x40046602 // FS_IOC32_SETFLAGS, _IOW('f', 2, int)
	// sysFileSetattr is file_setattr(2) (Linux 6.17), numbered alike on
	// every architecture of the generic table.
	sysFileSetattr = 469
)

// projectGuard refuses (EPERM) the ioctls above and file_setattr. It
// compares only the low 32 bits of ioctl's request: the kernel takes it
// as an unsigned int, so a rule on all 64 bits (go-seccomp-bpf's) would
// let the same request through with high bits set.
func projectGuard(a *arch.Info) []bpf.Instruction {
	ioctl := uint32(a.SyscallNames["ioctl"])
	// seccomp_data.args[1]'s low word.
	argLow := uint32(16 + 8)
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		argLow += 4
	}
	eperm := uint32(errnoAction(unix.EPERM))
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: sysFileSetattr, SkipFalse: 1},
		bpf.RetConstant{Val: eperm},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ioctl, SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionAllow)},
		bpf.LoadAbsolute{Off: argLow, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: fsIocFSSetXattr, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: fsIocSetFlags, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: fsIoc32SetFlags, SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionAllow)},
		bpf.RetConstant{Val: eperm},
	}
}

// archGuard comes first in the base: a syscall of another architecture
// or of the x32 ABI kills the process, and one newer than the syscall
// table known here fails with ENOSYS (as for an older kernel, so that
// libc falls back) rather than EPERM.
func archGuard(a *arch.Info) []bpf.Instruction {
	const kill = uint32(seccomp.ActionKillProcess)
	g := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(a.ID), SkipTrue: 1},
		bpf.RetConstant{Val: kill},
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
	}
	if a.ID == arch.X86_64.ID {
		g = append(g,
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: uint32(arch.X32.SeccompMask), SkipFalse: 1},
			bpf.RetConstant{Val: kill})
	}
	newest := slices.Max(slices.Collect(maps.Keys(a.SyscallNumbers)))
	return append(g,
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(newest), SkipFalse: 1},
		bpf.RetConstant{Val: uint32(errnoAction(unix.ENOSYS))})
}

// basePolicies are the base programs: the allowlist, then one program per
// syscall with argument rules.
func basePolicies(a *arch.Info) ([]seccomp.Policy, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}
	profile, err := mobyseccomp.GetDefaultProfile(spec)
	if err != nil {
		return nil, fmt.Errorf("docker's seccomp profile: %w", err)
	}
	known := func(name string) bool { _, ok := a.SyscallNames[name]; return ok }

	deny := seccomp.SyscallGroup{Action: errnoAction(unix.EPERM)}
	ruled := map[string]bool{}
	for _, name := range deniedSyscalls() {
		ruled[name] = true
		if known(name) {
			deny.Names = append(deny.Names, name)
		}
	}
	groups := []seccomp.SyscallGroup{deny}
	if known("clone3") {
		// Ahead of Docker's rule for it (ENOSYS): PID 1 needs it.
		groups = append(groups, seccomp.SyscallGroup{Names: []string{"clone3"}, Action: seccomp.ActionAllow})
		ruled["clone3"] = true
	}
	// Each syscall refused unless one of its argument rules allows it.
	checked := map[string]seccomp.ArgumentConditions{
		// Whatever Docker's rules say: no namespace from clone.
		"clone": {{Argument: cloneFlagsArg(a), Operation: seccomp.BitsNotSet, Value: namespaceFlags}},
	}
	allowedRules := map[string][]seccomp.Condition{}
	index := map[seccomp.Action]int{}
	for _, rule := range profile.Syscalls {
		action, err := mobyAction(rule)
		if err != nil {
			return nil, err
		}
		for _, name := range rule.Names {
			if !known(name) || ruled[name] {
				continue // another architecture's, or ruled on above
			}
			if len(rule.Args) > 0 {
				if action != seccomp.ActionAllow || len(rule.Args) != 1 {
					return nil, fmt.Errorf("docker's seccomp profile: rule for %s with %d argument checks and action %v not supported", name, len(rule.Args), action)
				}
				c, err := mobyCondition(name, rule.Args[0])
				if err != nil {
					return nil, err
				}
				allowedRules[name] = append(allowedRules[name], c)
				continue
			}
			i, ok := index[action]
			if !ok {
				i = len(groups)
				index[action] = i
				groups = append(groups, seccomp.SyscallGroup{Action: action})
			}
			if !slices.Contains(groups[i].Names, name) {
				groups[i].Names = append(groups[i].Names, name)
			}
		}
	}
	unconditional := func(name string) bool {
		return slices.ContainsFunc(groups, func(g seccomp.SyscallGroup) bool { return slices.Contains(g.Names, name) })
	}
	allowChecked := seccomp.SyscallGroup{Action: seccomp.ActionAllow}
	var policies []seccomp.Policy
	for _, name := range slices.Sorted(maps.Keys(allowedRules)) {
		if unconditional(name) {
			continue // allowed (or refused) whatever its arguments
		}
		allowChecked.Names = append(allowChecked.Names, name)
		policies = append(policies, refuseUnless(name, allowedRules[name]))
	}
	for _, name := range slices.Sorted(maps.Keys(checked)) {
		if conds := checked[name]; known(name) {
			if !unconditional(name) && !slices.Contains(allowChecked.Names, name) {
				allowChecked.Names = append(allowChecked.Names, name)
			}
			policies = append(policies, refuseUnless(name, conds))
		}
	}
	groups = append(groups, allowChecked)
	// ActionErrno is EPERM to go-seccomp-bpf, the only errno it takes here.
	allowlist := seccomp.Policy{DefaultAction: seccomp.ActionErrno, Syscalls: groups}
	return append([]seccomp.Policy{allowlist}, policies...), nil
}

// refuseUnless is a program refusing name (EPERM) unless one of allowed
// holds: it refuses when all of their negations hold, the one argument
// check of its program (see above).
func refuseUnless(name string, allowed []seccomp.Condition) seccomp.Policy {
	negated := make(seccomp.ArgumentConditions, 0, len(allowed))
	for _, c := range allowed {
		c.Operation = map[seccomp.Operation]seccomp.Operation{
			seccomp.Equal: seccomp.NotEqual, seccomp.NotEqual: seccomp.Equal,
			seccomp.GreaterThan: seccomp.LessOrEqual, seccomp.LessOrEqual: seccomp.GreaterThan,
			seccomp.GreaterOrEqual: seccomp.LessThan, seccomp.LessThan: seccomp.GreaterOrEqual,
			seccomp.BitsNotSet: seccomp.BitsSet, seccomp.BitsSet: seccomp.BitsNotSet,
		}[c.Operation]
		negated = append(negated, c)
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{{
			Action:             errnoAction(unix.EPERM),
			NamesWithCondtions: []seccomp.NameWithConditions{{Name: name, Conditions: negated}},
		}},
	}
}

// cloneFlagsArg is the argument of clone holding its flags.
func cloneFlagsArg(a *arch.Info) uint32 {
	if a.Name == "s390x" {
		return 1
	}
	return 0
}

func mobyAction(rule specs.LinuxSyscall) (seccomp.Action, error) {
	switch rule.Action {
	case specs.ActAllow:
		return seccomp.ActionAllow, nil
	case specs.ActErrno:
		errno := unix.EPERM
		if rule.ErrnoRet != nil {
			errno = unix.Errno(*rule.ErrnoRet)
		}
		return errnoAction(errno), nil
	}
	return 0, fmt.Errorf("docker's seccomp profile: action %s for %v not supported", rule.Action, rule.Names)
}

// mobyCondition converts one argument rule of Docker's profile.
func mobyCondition(name string, arg specs.LinuxSeccompArg) (seccomp.Condition, error) {
	op, ok := map[specs.LinuxSeccompOperator]seccomp.Operation{
		specs.OpEqualTo: seccomp.Equal, specs.OpNotEqual: seccomp.NotEqual,
		specs.OpGreaterThan: seccomp.GreaterThan, specs.OpGreaterEqual: seccomp.GreaterOrEqual,
		specs.OpLessThan: seccomp.LessThan, specs.OpLessEqual: seccomp.LessOrEqual,
	}[arg.Op]
	if arg.Op == specs.OpMaskedEqual && arg.ValueTwo == 0 {
		op, ok = seccomp.BitsNotSet, true // (arg & mask) == 0
	}
	if !ok {
		return seccomp.Condition{}, fmt.Errorf("docker's seccomp profile: %s: operator %s not supported", name, arg.Op)
	}
	return seccomp.Condition{Argument: uint32(arg.Index), Operation: op, Value: arg.Value}, nil
}

// encodeSeccomp lays out the seccomp file (see protocol.go).
func encodeSeccomp(base, layer [][]bpf.Instruction) ([]byte, error) {
	progs := append(slices.Clone(base), layer...)
	if len(base) == 0 || len(progs) > maxSeccompPrograms {
		return nil, fmt.Errorf("%d seccomp programs, want 1 to %d", len(progs), maxSeccompPrograms)
	}
	out := binary.NativeEndian.AppendUint32(nil, seccompMagic)
	out = binary.NativeEndian.AppendUint32(out, ProtocolVersion)
	out = binary.NativeEndian.AppendUint32(out, uint32(len(base)))
	out = binary.NativeEndian.AppendUint32(out, uint32(len(layer)))
	for _, prog := range progs {
		if len(prog) == 0 || len(prog) > maxSeccompInsns {
			return nil, fmt.Errorf("seccomp program of %d instructions, want 1 to %d", len(prog), maxSeccompInsns)
		}
		out = binary.NativeEndian.AppendUint32(out, uint32(len(prog)))
	}
	for _, prog := range progs {
		raw, err := bpf.Assemble(prog)
		if err != nil {
			return nil, fmt.Errorf("assemble seccomp program: %w", err)
		}
		for _, ins := range raw {
			out = binary.NativeEndian.AppendUint16(out, ins.Op)
			out = append(out, ins.Jt, ins.Jf)
			out = binary.NativeEndian.AppendUint32(out, ins.K)
		}
	}
	return out, nil
}
