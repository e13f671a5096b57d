package server

import (
	"mime"
	"net/http"
	"path"
	"strings"
)

// downloadOutput streams a user's output file as an attachment.
func (s *Server) downloadOutput(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	f, err := s.backend.OpenOutput(r.Context(), r.PathValue("user_id"), name)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Disposition", attachment(name))
	s.stream(w, r, f, f.Info.Size, contentType(name), f.Info.ModTime)
	return nil
}

// contentType names the media type of a file by its extension. The types
// the agent's outputs most often have are listed here, as the host's MIME
// database may lack them.
func contentType(name string) string {
	switch ext := strings.ToLower(path.Ext(name)); ext {
	case ".docx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case ".xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case ".pptx":
		return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	case ".pdf":
		return "application/pdf"
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".md":
		return "text/markdown; charset=utf-8"
	case ".json":
		return "application/json"
	case ".png":
		return "image/png"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return "application/octet-stream"
	}
}

// attachment is the Content-Disposition of a download named name: an ASCII
// filename for old clients and, when that is not name, RFC 5987's UTF-8
// filename* (RFC 6266 4.3).
func attachment(name string) string {
	fallback := strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '_'
		}
		return r
	}, name)
	v := mime.FormatMediaType("attachment", map[string]string{"filename": fallback})
	if fallback != name {
		v += "; filename*=UTF-8''" + percentEncode(name)
	}
	return v
}

// percentEncode escapes every byte of s but RFC 5987's attr-chars.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}
