package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// journalHandler sends records to the systemd journal with their
// attributes as fields (session=s1 becomes SANDBOXD_SESSION=s1), so that
// `journalctl -u sandboxd SANDBOXD_SESSION=s1` finds one session's lines.
type journalHandler struct {
	level  slog.Leveler
	attrs  []slog.Attr
	prefix string // group prefix for the fields
}

func newJournalHandler(level slog.Leveler) *journalHandler {
	return &journalHandler{level: level}
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{}
	var text strings.Builder
	text.WriteString(r.Message)
	add := func(a slog.Attr) {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			return
		}
		vars[fieldName(h.prefix+a.Key)] = a.Value.String()
		fmt.Fprintf(&text, " %s=%s", a.Key, a.Value.String())
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	return journal.Send(text.String(), priority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix = h.prefix + name + "_"
	return &c
}

// fieldName makes a journal field name: upper case letters, digits and
// underscores, not starting with an underscore (those are the journal's).
func fieldName(key string) string {
	var b strings.Builder
	b.WriteString("SANDBOXD_")
	for _, r := range strings.ToUpper(key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
