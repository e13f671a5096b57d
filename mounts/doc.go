// Package mounts owns sandboxd's on-disk layout under its state root — the
// shared environment, the users' workspaces and the sessions' directories —
// the validation of the ids that name them, the skeleton root filesystem,
// and the mount table each sandbox is composed of.
package mounts
