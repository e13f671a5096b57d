// Package server serves sandboxd's HTTP/JSON API (package api) on a Unix
// socket. It owns the route table, the one mapping from the api sentinel
// errors to HTTP statuses, request decoding and its limits, the per-request
// log line with the caller's peer credentials, and creating the listening
// socket safely. What a route does is the Backend's business.
package server
