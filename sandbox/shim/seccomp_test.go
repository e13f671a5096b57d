package shim

import (
	"encoding/binary"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// loadedPrograms decodes the seccomp file as the agent reads it.
func loadedPrograms(t *testing.T, file []byte) (base, layer []*bpf.VM) {
	t.Helper()
	require.GreaterOrEqual(t, len(file), seccompHeaderLen, "header")
	u32 := func(off int) int { return int(binary.NativeEndian.Uint32(file[off:])) }
	require.Equal(t, seccompMagic, u32(0), "magic")
	require.Equal(t, ProtocolVersion, u32(4), "version")
	nbase, nlayer := u32(8), u32(12)
	off := seccompHeaderLen + 4*(nbase+nlayer)
	var vms []*bpf.VM
	for i := range nbase + nlayer {
		n := u32(seccompHeaderLen + 4*i)
		prog := make([]bpf.Instruction, n)
		for j := range prog {
			raw := bpf.RawInstruction{Op: binary.NativeEndian.Uint16(file[off:]), Jt: file[off+2], Jf: file[off+3],
				K: binary.NativeEndian.Uint32(file[off+4:])}
			prog[j] = raw.Disassemble()
			off += 8
		}
		vm, err := bpf.NewVM(prog)
		require.NoError(t, err, "program %d", i)
		vms = append(vms, vm)
	}
	require.Equal(t, len(file), off, "file length")
	return vms[:nbase], vms[nbase:]
}

// verdict runs a syscall through programs as the kernel does: every
// filter runs, and the action of highest precedence wins.
func verdict(t *testing.T, programs []*bpf.VM, auditArch uint32, nr int, args ...uint64) uint32 {
	t.Helper()
	// struct seccomp_data, in the byte order x/net/bpf loads words in.
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], uint32(nr))
	binary.BigEndian.PutUint32(data[4:], auditArch)
	for i, a := range args {
		lo, hi := 16+8*i, 16+8*i+4
		if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 { // big-endian host
			lo, hi = hi, lo
		}
		binary.BigEndian.PutUint32(data[lo:], uint32(a))
		binary.BigEndian.PutUint32(data[hi:], uint32(a>>32))
	}
	best := uint32(unix.SECCOMP_RET_ALLOW)
	for _, vm := range programs {
		r, err := vm.Run(data)
		require.NoError(t, err)
		ret := uint32(r)
		if int32(ret&unix.SECCOMP_RET_ACTION_FULL) < int32(best&unix.SECCOMP_RET_ACTION_FULL) {
			best = ret
		}
	}
	return best
}

const (
	allow    = unix.SECCOMP_RET_ALLOW
	eperm    = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosys   = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	killProc = unix.SECCOMP_RET_KILL_PROCESS
)

func TestSeccompVerdicts(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the table is of x86_64 syscall numbers")
	}
	start := time.Now()
	file, err := compileSeccomp()
	require.NoError(t, err, "compile")
	t.Logf("compiled in %v: %d bytes", time.Since(start), len(file))
	base, layer := loadedPrograms(t, file)
	command := append(append([]*bpf.VM{}, base...), layer...)
	const x86_64, i386 = unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386
	const fork = unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | uint64(unix.SIGCHLD)
	const thread = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD |
		unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
	for _, tc := range []struct {
		name string
		nr   int
		args []uint64
		want uint32
	}{
		// What every program does.
		{"read", unix.SYS_READ, nil, allow},
		{"execve", unix.SYS_EXECVE, nil, allow},
		{"openat", unix.SYS_OPENAT, nil, allow},
		{"faccessat2", unix.SYS_FACCESSAT2, nil, allow},
		{"close_range", unix.SYS_CLOSE_RANGE, nil, allow},
		{"rseq", unix.SYS_RSEQ, nil, allow},
		{"statx", unix.SYS_STATX, nil, allow},
		{"vfork", unix.SYS_VFORK, nil, allow},
		{"clone to fork", unix.SYS_CLONE, []uint64{fork}, allow},
		{"clone a thread", unix.SYS_CLONE, []uint64{thread}, allow},
		{"setuid", unix.SYS_SETUID, nil, allow},
		{"ptrace", unix.SYS_PTRACE, nil, allow},
		{"socket AF_UNIX", unix.SYS_SOCKET, []uint64{unix.AF_UNIX}, allow},
		{"socket AF_INET6", unix.SYS_SOCKET, []uint64{unix.AF_INET6}, allow},
		{"socket AF_NETLINK", unix.SYS_SOCKET, []uint64{unix.AF_NETLINK}, allow},
		{"personality query", unix.SYS_PERSONALITY, []uint64{0xffffffff}, allow},
		{"personality PER_LINUX", unix.SYS_PERSONALITY, []uint64{0}, allow},
		// Namespaces.
		{"clone3", unix.SYS_CLONE3, nil, enosys},
		{"clone CLONE_NEWUSER", unix.SYS_CLONE, []uint64{fork | unix.CLONE_NEWUSER}, eperm},
		{"clone CLONE_NEWNS", unix.SYS_CLONE, []uint64{fork | unix.CLONE_NEWNS}, eperm},
		{"clone CLONE_NEWNET", unix.SYS_CLONE, []uint64{unix.CLONE_NEWNET}, eperm},
		{"clone CLONE_NEWTIME", unix.SYS_CLONE, []uint64{unix.CLONE_NEWTIME}, eperm},
		{"clone CLONE_NEWCGROUP", unix.SYS_CLONE, []uint64{unix.CLONE_NEWCGROUP}, eperm},
		{"unshare", unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"unshare CLONE_FILES", unix.SYS_UNSHARE, []uint64{unix.CLONE_FILES}, eperm},
		{"setns", unix.SYS_SETNS, nil, eperm},
		// Mounts.
		{"mount", unix.SYS_MOUNT, nil, eperm},
		{"umount2", unix.SYS_UMOUNT2, nil, eperm},
		{"pivot_root", unix.SYS_PIVOT_ROOT, nil, eperm},
		{"chroot", unix.SYS_CHROOT, nil, eperm},
		{"move_mount", unix.SYS_MOVE_MOUNT, nil, eperm},
		{"open_tree", unix.SYS_OPEN_TREE, nil, eperm},
		{"fsopen", unix.SYS_FSOPEN, nil, eperm},
		{"fsconfig", unix.SYS_FSCONFIG, nil, eperm},
		{"fsmount", unix.SYS_FSMOUNT, nil, eperm},
		{"fspick", unix.SYS_FSPICK, nil, eperm},
		{"mount_setattr", unix.SYS_MOUNT_SETATTR, nil, eperm},
		// Keyrings.
		{"add_key", unix.SYS_ADD_KEY, nil, eperm},
		{"request_key", unix.SYS_REQUEST_KEY, nil, eperm},
		{"keyctl", unix.SYS_KEYCTL, nil, eperm},
		// Kernel.
		{"bpf", unix.SYS_BPF, nil, eperm},
		{"perf_event_open", unix.SYS_PERF_EVENT_OPEN, nil, eperm},
		{"kexec_load", unix.SYS_KEXEC_LOAD, nil, eperm},
		{"kexec_file_load", unix.SYS_KEXEC_FILE_LOAD, nil, eperm},
		{"init_module", unix.SYS_INIT_MODULE, nil, eperm},
		{"finit_module", unix.SYS_FINIT_MODULE, nil, eperm},
		{"delete_module", unix.SYS_DELETE_MODULE, nil, eperm},
		{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, nil, eperm},
		{"name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT, nil, eperm},
		{"userfaultfd", unix.SYS_USERFAULTFD, nil, eperm},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, nil, eperm},
		{"reboot", unix.SYS_REBOOT, nil, eperm},
		{"swapon", unix.SYS_SWAPON, nil, eperm},
		{"swapoff", unix.SYS_SWAPOFF, nil, eperm},
		{"acct", unix.SYS_ACCT, nil, eperm},
		{"iopl", unix.SYS_IOPL, nil, eperm},
		{"ioperm", unix.SYS_IOPERM, nil, eperm},
		{"quotactl", unix.SYS_QUOTACTL, nil, eperm},
		{"lookup_dcookie", unix.SYS_LOOKUP_DCOOKIE, nil, eperm},
		{"personality READ_IMPLIES_EXEC", unix.SYS_PERSONALITY, []uint64{0x0400000}, eperm},
		{"personality ADDR_NO_RANDOMIZE", unix.SYS_PERSONALITY, []uint64{0x0040000}, eperm},
		{"socket AF_ALG", unix.SYS_SOCKET, []uint64{unix.AF_ALG}, eperm},
		{"socket AF_VSOCK", unix.SYS_SOCKET, []uint64{unix.AF_VSOCK}, eperm},
		{"socket beyond AF_MAX", unix.SYS_SOCKET, []uint64{1000}, eperm},
		// Quota projects: a sandbox keeps its files in theirs.
		{"ioctl FS_IOC_FSSETXATTR", unix.SYS_IOCTL, []uint64{3, fsIocFSSetXattr}, eperm},
		{"ioctl FS_IOC_FSSETXATTR, high bits set", unix.SYS_IOCTL, []uint64{3, 0xffffffff00000000 | fsIocFSSetXattr}, eperm},
		{"ioctl FS_IOC_SETFLAGS", unix.SYS_IOCTL, []uint64{3, unix.FS_IOC_SETFLAGS}, eperm},
		{"ioctl FS_IOC32_SETFLAGS", unix.SYS_IOCTL, []uint64{3, fsIoc32SetFlags}, eperm},
		{"ioctl FS_IOC_FSGETXATTR", unix.SYS_IOCTL, []uint64{3, 0x801c581f}, allow},
		{"ioctl FS_IOC_GETFLAGS", unix.SYS_IOCTL, []uint64{3, unix.FS_IOC_GETFLAGS}, allow},
		{"ioctl TCGETS", unix.SYS_IOCTL, []uint64{1, unix.TCGETS}, allow},
		{"ioctl FIONREAD", unix.SYS_IOCTL, []uint64{0, unix.TIOCINQ}, allow},
		{"file_getattr", 468, nil, enosys},
		// Other ABIs, and numbers newer than the table.
		{"x32 read", unix.SYS_READ | 0x40000000, nil, killProc},
		{"syscall after the table", 1000, nil, enosys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, verdict(t, command, x86_64, tc.nr, tc.args...), "%s for a command", tc.name)
		})
	}
	assert.Equal(t, uint32(killProc), verdict(t, command, i386, 3), "an i386 syscall kills")
	assert.Equal(t, uint32(allow), verdict(t, base, x86_64, unix.SYS_CLONE3), "PID 1 keeps clone3")
	assert.Equal(t, uint32(eperm), verdict(t, base, x86_64, unix.SYS_UNSHARE), "PID 1 cannot unshare either")
	assert.Equal(t, uint32(eperm), verdict(t, base, x86_64, unix.SYS_IOCTL, 3, fsIocFSSetXattr), "nor move a file to another project")
	// Newer than the table today (ENOSYS), refused by name once it is not.
	assert.Contains(t, []uint32{enosys, eperm}, verdict(t, command, x86_64, sysFileSetattr), "file_setattr is refused")
}

func TestSeccompFileIsSealed(t *testing.T) {
	f, err := SeccompFile()
	require.NoError(t, err)
	defer f.Close()
	got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	require.NoError(t, err)
	want, err := SeccompProgram()
	require.NoError(t, err)
	assert.Equal(t, want, got, "file contents")
	_, err = f.WriteAt([]byte{0}, 20)
	assert.ErrorIs(t, err, unix.EPERM, "the file is sealed against writes")
}

func BenchmarkSeccompCompile(b *testing.B) {
	for b.Loop() {
		if _, err := compileSeccomp(); err != nil {
			b.Fatal(err)
		}
	}
}
