// Package envs owns the base environments sessions overlay: immutable,
// versioned venvs under envs/<id>/, each with a manifest envs/<id>.json
// saying what it declares, has and lacks; the probe that finds out; the
// steps that build one inside a sandbox (as data, run by the caller);
// and the removal of versions no session uses.
package envs
