// Package api is sandboxd's wire contract: the JSON types of the versioned
// HTTP API, the error codes and their sentinel errors, and a Go client. The
// OpenAPI document (openapi.yaml) describes the same contract; a test keeps
// the server's routes and that document in step.
package api
