package sandbox

import (
	"encoding/base64"
	"sync"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/api"
)

// eventWriter turns one output stream of a command into exec events, as
// the output arrives. A chunk that is valid UTF-8 goes out as text, any
// other as base64; a multi-byte character split across two reads is held
// back until it is whole, so that text stays text.
type eventWriter struct {
	// mu serialises the two streams' events onto one connection.
	mu     *sync.Mutex
	stream string
	emit   func(api.ExecEvent) error
	carry  []byte
}

func (w *eventWriter) Write(p []byte) (int, error) {
	data := append(w.carry, p...)
	cut := len(data) - incompleteRune(data)
	w.carry = append([]byte(nil), data[cut:]...)
	if cut == 0 {
		return len(p), nil
	}
	if err := w.send(data[:cut]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush sends what was held back: the command ended mid-character.
func (w *eventWriter) flush() error {
	if len(w.carry) == 0 {
		return nil
	}
	err := w.send(w.carry)
	w.carry = nil
	return err
}

func (w *eventWriter) send(chunk []byte) error {
	ev := api.ExecEvent{Type: w.stream}
	if utf8.Valid(chunk) {
		ev.Data = string(chunk)
	} else {
		ev.DataB64 = base64.StdEncoding.EncodeToString(chunk)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.emit(ev)
}

// incompleteRune is the length of an unfinished UTF-8 sequence at the end
// of data, or 0.
func incompleteRune(data []byte) int {
	for i := 1; i < utf8.UTFMax && i <= len(data); i++ {
		if utf8.RuneStart(data[len(data)-i]) {
			if utf8.FullRune(data[len(data)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}
