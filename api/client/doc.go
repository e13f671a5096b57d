// Package client is the Go client of sandboxd's HTTP/JSON API on its Unix
// socket: one method per route, the wire types of package api in and out,
// failures as *api.Error.
package client
