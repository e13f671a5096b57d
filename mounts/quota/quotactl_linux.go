package quota

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's quota and file-attribute interfaces that x/sys/unix does
// not wrap (linux/quota.h, linux/dqblk_xfs.h, linux/fs.h). The generic
// Q_GETQUOTA/Q_SETQUOTA on PRJQUOTA serve ext4 and XFS alike.
const (
	prjQuota = 2

	qGetQuota   = 0x800007
	qSetQuota   = 0x800008
	qXGetQStatV = 'X'<<8 + 8

	qifBLimits = 1
	qifILimits = 4
	qifLimits  = qifBLimits | qifILimits
	// qifBlockSize is the unit of dqb_bhardlimit (dqb_curspace is bytes).
	qifBlockSize = 1024

	fsQStatVVersion1 = 1
	fsQuotaPDQAcct   = 1 << 4
	fsQuotaPDQEnfd   = 1 << 5

	fsIOCFSGetXAttr    = 0x801c581f // _IOR('X', 31, struct fsxattr)
	fsIOCFSSetXAttr    = 0x401c5820 // _IOW('X', 32, struct fsxattr)
	fsXFlagProjInherit = 0x200
)

// dqblk is struct if_dqblk.
type dqblk struct {
	BHardLimit, BSoftLimit, CurSpace  uint64
	IHardLimit, ISoftLimit, CurInodes uint64
	BTime, ITime                      uint64
	Valid                             uint32
	_                                 uint32
}

// fsxattr is struct fsxattr.
type fsxattr struct {
	XFlags, ExtSize, NExtents, ProjID, CowExtSize uint32
	_                                             [8]byte
}

type fsQFileStatV struct {
	Ino, NBlks        uint64
	NExtents, Padding uint32
}

// fsQuotaStatV is struct fs_quota_statv.
type fsQuotaStatV struct {
	Version                              int8
	_                                    uint8
	Flags                                uint16
	IncoreDqs                            uint32
	UQuota, GQuota, PQuota               fsQFileStatV
	BTimeLimit, ITimeLimit, RTBTimeLimit int32
	BWarnLimit, IWarnLimit, RTBWarnLimit uint16
	_                                    uint16
	_                                    uint32
	_                                    [7]uint64
}

func qcmd(cmd, typ int) int { return cmd<<8 | typ&0xff }

// quotactlFd is quotactl_fd(2) (Linux 5.14): the filesystem is named by
// any descriptor on it, so no block device has to be found. A nil f
// passes -1: EBADF then shows the call exists (ENOSYS from a real
// descriptor only says its filesystem has no quotas).
func quotactlFd(f *os.File, cmd int, id uint32, addr unsafe.Pointer) error {
	fd := ^uintptr(0)
	if f != nil {
		fd = f.Fd()
	}
	_, _, errno := unix.Syscall6(unix.SYS_QUOTACTL_FD, fd, uintptr(cmd), uintptr(id), uintptr(addr), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// projectQuotaState returns the filesystem's project quota flags.
func projectQuotaState(f *os.File) (uint16, error) {
	st := fsQuotaStatV{Version: fsQStatVVersion1}
	if err := quotactlFd(f, qcmd(qXGetQStatV, prjQuota), 0, unsafe.Pointer(&st)); err != nil {
		return 0, fmt.Errorf("quotactl Q_XGETQSTATV on %s: %w", f.Name(), err)
	}
	return st.Flags, nil
}

// projectUsage is a project's usage and hard limits (bytes, inodes).
type projectUsage struct {
	Bytes, LimitBytes, Inodes, LimitInodes int64
}

func getProjectQuota(f *os.File, id uint32) (projectUsage, error) {
	var d dqblk
	if err := quotactlFd(f, qcmd(qGetQuota, prjQuota), id, unsafe.Pointer(&d)); err != nil {
		return projectUsage{}, fmt.Errorf("quotactl Q_GETQUOTA project %d: %w", id, err)
	}
	return projectUsage{
		Bytes:       int64(d.CurSpace),
		LimitBytes:  int64(d.BHardLimit) * qifBlockSize,
		Inodes:      int64(d.CurInodes),
		LimitInodes: int64(d.IHardLimit),
	}, nil
}

// setProjectQuota sets a project's hard limits, bytes rounded down to
// the interface's KiB; zero removes a limit. No soft limits: nothing
// depends on a grace period.
func setProjectQuota(f *os.File, id uint32, bytes, inodes int64) error {
	d := dqblk{
		BHardLimit: uint64(bytes / qifBlockSize),
		IHardLimit: uint64(inodes),
		Valid:      qifLimits,
	}
	if err := quotactlFd(f, qcmd(qSetQuota, prjQuota), id, unsafe.Pointer(&d)); err != nil {
		return fmt.Errorf("quotactl Q_SETQUOTA project %d: %w", id, err)
	}
	return nil
}

// setProject gives dir (opened read-only) the project id, with the
// inherit flag so that everything made beneath it gets it too.
func setProject(dir *os.File, id uint32) error {
	var a fsxattr
	if err := ioctlPtr(dir, fsIOCFSGetXAttr, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("FS_IOC_FSGETXATTR %s: %w", dir.Name(), err)
	}
	if a.ProjID == id && a.XFlags&fsXFlagProjInherit != 0 {
		return nil
	}
	a.ProjID = id
	a.XFlags |= fsXFlagProjInherit
	if err := ioctlPtr(dir, fsIOCFSSetXAttr, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("FS_IOC_FSSETXATTR %s project %d: %w", dir.Name(), id, err)
	}
	return nil
}

func ioctlPtr(f *os.File, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}
