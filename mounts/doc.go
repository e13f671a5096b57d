// Package mounts owns sandboxd's on-disk layout under its state root (the
// shared environment, the users' workspaces, the sessions' directories),
// the skeleton root file system and the mount table each sandbox is
// composed of, and the two ways the daemon touches trees a sandbox can
// write: Root, which serves the files API (paths a caller names, resolved
// beneath a root with os.Root), and Dir, for the daemon's own work (keeping
// outputs, removing sessions, writing logs), which follows no symlink at
// any component and acts only on descriptors it opened itself.
package mounts
