// Package api is sandboxd's wire contract: the JSON types of the versioned
// HTTP API and its error codes, with a sentinel error per code. The OpenAPI
// document (openapi.yaml) is the one written contract; tests hold these
// types, the server's routes, the error codes and the Python client to it.
// The Go client is in api/client, the server in api/server.
package api
