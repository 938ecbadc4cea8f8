package manifest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Decoder splits a stream into documents one at a time, exactly as ParseFile splits a whole file
// (the same separators, lines and bytes), so that `check` holds one document at a time instead of
// the input.
type Decoder struct {
	file  string
	r     *bufio.Reader
	line  int // lines read so far
	index int
	sep   []byte // the separator that opens the next document
	done  bool
}

// NewDecoder reads the documents of file (a name for messages) from r.
func NewDecoder(file string, r io.Reader) *Decoder {
	return &Decoder{file: file, r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next document, or io.EOF after the last. As with ParseFile, a stream yields at
// least one (possibly empty) document, and one more after a trailing separator.
func (d *Decoder) Next() (RawDocument, error) {
	if d.done {
		return RawDocument{}, io.EOF
	}
	doc := RawDocument{sep: d.sep, line: d.line + 1, index: d.index}
	var buf []byte
	for {
		start := len(buf)
		var err error
		buf, err = d.readLine(buf)
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			return RawDocument{}, fmt.Errorf("%s: reading: %w", d.file, err)
		}
		if len(buf) > start {
			d.line++
			if isSeparator(buf[start:]) {
				doc.raw = buf[:start:start]
				d.sep = buf[start:]
				d.index++
				return doc, nil
			}
		}
		if eof { // the last document
			doc.raw = buf
			d.done = true
			return doc, nil
		}
	}
}

// readLine appends one line (with its line break) to buf; io.EOF when the stream ended, possibly
// after a last line without a break.
func (d *Decoder) readLine(buf []byte) ([]byte, error) {
	for {
		chunk, err := d.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, err
		}
	}
}
