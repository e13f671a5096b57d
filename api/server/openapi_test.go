package server_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server"
)

// openAPI is the part of the document the tests check.
type openAPI struct {
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Responses map[string]response `yaml:"responses"`
		Schemas   map[string]schema   `yaml:"schemas"`
	} `yaml:"components"`
}

type operation struct {
	RequestBody map[string]any      `yaml:"requestBody"`
	Responses   map[string]response `yaml:"responses"`
}

type response struct {
	Ref     string `yaml:"$ref"`
	Content map[string]struct {
		Schema struct {
			Ref string `yaml:"$ref"`
		} `yaml:"schema"`
	} `yaml:"content"`
}

type schema struct {
	Ref        string               `yaml:"$ref"`
	AllOf      []schema             `yaml:"allOf"`
	Required   []string             `yaml:"required"`
	Properties map[string]yaml.Node `yaml:"properties"`
}

// operationKeys are the keys of an OpenAPI path item that are operations;
// the rest ("parameters", "summary", …) are not.
var operationKeys = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) openAPI {
	t.Helper()
	b, err := os.ReadFile("../openapi.yaml")
	require.NoError(t, err, "read api/openapi.yaml")
	var doc openAPI
	require.NoError(t, yaml.Unmarshal(b, &doc), "parse api/openapi.yaml")
	require.NotEmpty(t, doc.Paths, "document has paths")
	return doc
}

// operations returns the document's operations by "METHOD path".
func operations(t *testing.T, doc openAPI) map[server.RouteInfo]operation {
	t.Helper()
	ops := map[server.RouteInfo]operation{}
	for path, item := range doc.Paths {
		for key, node := range item {
			if !slices.Contains(operationKeys, key) {
				continue
			}
			var op operation
			require.NoError(t, node.Decode(&op), "decode %s %s", key, path)
			ops[server.RouteInfo{Method: strings.ToUpper(key), Path: path}] = op
		}
	}
	return ops
}

func TestOpenAPIDocumentsExactlyTheRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []server.RouteInfo
	for rt := range operations(t, doc) {
		documented = append(documented, rt)
	}
	assert.ElementsMatch(t, server.Routes(), documented, "api/openapi.yaml paths vs server.Routes()")
}

func TestOpenAPIErrorResponsesUseTheEnvelope(t *testing.T) {
	doc := loadOpenAPI(t)
	for rt, op := range operations(t, doc) {
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			want := []string{"500"}
			if op.RequestBody != nil {
				want = append(want, "400", "413")
			}
			if strings.Contains(rt.Path, "{id}") {
				want = append(want, "404")
			}
			for _, status := range want {
				assert.Contains(t, op.Responses, status, "documents its %s response", status)
			}
			for status, resp := range op.Responses {
				if strings.HasPrefix(status, "2") {
					continue
				}
				if name, ok := strings.CutPrefix(resp.Ref, "#/components/responses/"); ok {
					require.Contains(t, doc.Components.Responses, name, "response %s refers to a defined response", status)
					resp = doc.Components.Responses[name]
				}
				require.Contains(t, resp.Content, "application/json", "response %s is JSON", status)
				assert.Equal(t, "#/components/schemas/Error", resp.Content["application/json"].Schema.Ref,
					"response %s is the error envelope", status)
			}
		})
	}
}

// schemaTypes are the wire types by their OpenAPI schema name.
var schemaTypes = map[string]reflect.Type{
	"Error":                  reflect.TypeFor[api.Error](),
	"Limits":                 reflect.TypeFor[api.Limits](),
	"Info":                   reflect.TypeFor[api.Info](),
	"CreateSessionRequest":   reflect.TypeFor[api.CreateSessionRequest](),
	"Session":                reflect.TypeFor[api.Session](),
	"SessionList":            reflect.TypeFor[api.SessionList](),
	"ExecRequest":            reflect.TypeFor[api.ExecRequest](),
	"ExecResult":             reflect.TypeFor[api.ExecResult](),
	"DeleteSessionResult":    reflect.TypeFor[api.DeleteSessionResult](),
	"NotKept":                reflect.TypeFor[api.NotKept](),
	"FileInfo":               reflect.TypeFor[api.FileInfo](),
	"FileList":               reflect.TypeFor[api.FileList](),
	"TextLine":               reflect.TypeFor[api.TextLine](),
	"TextFile":               reflect.TypeFor[api.TextFile](),
	"WriteResult":            reflect.TypeFor[api.WriteResult](),
	"EditRequest":            reflect.TypeFor[api.EditRequest](),
	"EditResult":             reflect.TypeFor[api.EditResult](),
	"MkdirRequest":           reflect.TypeFor[api.MkdirRequest](),
	"MoveRequest":            reflect.TypeFor[api.MoveRequest](),
	"ExecEvent":              reflect.TypeFor[api.ExecEvent](),
	"StartProcessRequest":    reflect.TypeFor[api.StartProcessRequest](),
	"Process":                reflect.TypeFor[api.Process](),
	"ProcessList":            reflect.TypeFor[api.ProcessList](),
	"ProcessOutput":          reflect.TypeFor[api.ProcessOutput](),
	"InstallPackagesRequest": reflect.TypeFor[api.InstallPackagesRequest](),
	"InstallPackagesResult":  reflect.TypeFor[api.InstallPackagesResult](),
	"InstalledPackage":       reflect.TypeFor[api.InstalledPackage](),
	"SatisfiedPackage":       reflect.TypeFor[api.SatisfiedPackage](),
	"PackageEvent":           reflect.TypeFor[api.PackageEvent](),
	"Package":                reflect.TypeFor[api.Package](),
	"SessionPackages":        reflect.TypeFor[api.SessionPackages](),
	"Env":                    reflect.TypeFor[api.Env](),
	"MissingPackage":         reflect.TypeFor[api.MissingPackage](),
	"EnvList":                reflect.TypeFor[api.EnvList](),
	"SessionStats":           reflect.TypeFor[api.SessionStats](),
	"DiskUsage":              reflect.TypeFor[api.DiskUsage](),
	"Event":                  reflect.TypeFor[api.Event](),
	"Outcome":                reflect.TypeFor[api.Outcome](),
	"User":                   reflect.TypeFor[api.User](),
	"UserLimits":             reflect.TypeFor[api.UserLimits](),
	"UserUsage":              reflect.TypeFor[api.UserUsage](),
	"SessionDisk":            reflect.TypeFor[api.SessionDisk](),
}

func TestOpenAPISchemasCoverEveryWireType(t *testing.T) {
	for _, file := range []string{"../types.go", "../files.go", "../process.go", "../packages.go", "../stats.go", "../events.go", "../users.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		require.NoError(t, err, "parse %s", file)
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if _, isStruct := ts.Type.(*ast.StructType); isStruct {
					assert.Contains(t, schemaTypes, ts.Name.Name, "api.%s (%s) is checked against a schema", ts.Name.Name, file)
				}
			}
		}
	}
}

// jsonFields are the JSON names of typ's fields, those of an embedded
// struct included as encoding/json flattens them, and the ones always
// encoded.
func jsonFields(typ reflect.Type) (fields, required []string) {
	for f := range typ.Fields() {
		tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			embedded, embeddedRequired := jsonFields(f.Type)
			fields, required = append(fields, embedded...), append(required, embeddedRequired...)
			continue
		}
		if tag == "-" || tag == "" {
			continue
		}
		fields = append(fields, tag)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, tag)
		}
	}
	return fields, required
}

// schemaFields are the properties of sc and the required ones, those of
// its allOf parts included.
func schemaFields(t *testing.T, doc openAPI, sc schema) (props, required []string) {
	t.Helper()
	if name, ok := strings.CutPrefix(sc.Ref, "#/components/schemas/"); ok {
		require.Contains(t, doc.Components.Schemas, name, "$ref %s is defined", sc.Ref)
		return schemaFields(t, doc, doc.Components.Schemas[name])
	}
	for p := range sc.Properties {
		props = append(props, p)
	}
	required = sc.Required
	for _, part := range sc.AllOf {
		partProps, partRequired := schemaFields(t, doc, part)
		props, required = append(props, partProps...), append(required, partRequired...)
	}
	return props, required
}

func TestOpenAPISchemasMatchTheTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, typ := range schemaTypes {
		t.Run(name, func(t *testing.T) {
			require.Contains(t, doc.Components.Schemas, name, "schema %s is defined", name)
			fields, required := jsonFields(typ)
			props, schemaRequired := schemaFields(t, doc, doc.Components.Schemas[name])
			assert.ElementsMatch(t, fields, props, "schema %s's properties are api.%s's JSON fields", name, typ.Name())
			assert.ElementsMatch(t, required, schemaRequired, "schema %s requires exactly the fields without omitempty or omitzero", name)
		})
	}
}

// The 405 code is the server's own; the document must list it with the rest.
func TestOpenAPIListsEveryErrorCode(t *testing.T) {
	b, err := os.ReadFile("../openapi.yaml")
	require.NoError(t, err, "read api/openapi.yaml")
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Enum []string `yaml:"enum"`
						} `yaml:"code"`
					} `yaml:"properties"`
				} `yaml:"Error"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc), "parse api/openapi.yaml")
	codes := []string{
		api.CodeInvalidArgument, api.CodePermission, api.CodePackageNotAllowed, api.CodeNotFound, "method_not_allowed", api.CodeConflict,
		api.CodeAlreadyExists, api.CodeTooLarge, api.CodeUnsupported, api.CodeQuotaExceeded, api.CodePidsLimit,
		api.CodeUnavailable, api.CodeInternal, api.CodeExpired, api.CodeInvalidQuota,
	}
	assert.ElementsMatch(t, codes, doc.Components.Schemas.Error.Properties.Code.Enum, "Error.code enum")
}
