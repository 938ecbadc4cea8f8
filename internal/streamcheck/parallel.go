package streamcheck

import (
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
)

// parsers bounds the documents parsed at once. Parsing (YAML to JSON, and the node tree for field
// lines) is most of check's cost and depends on nothing but the document, so it runs ahead on the
// other cores while deciding stays in input order on one.
var parsers = min(runtime.GOMAXPROCS(0), 4)

type parsed struct {
	raw  manifest.RawDocument
	doc  manifest.Document
	err  error
	done chan struct{}
}

// eachParsed calls fn with every document of src, parsed, in order, until fn says stop or fails.
// Documents read ahead are bounded by the two channels (parsers each) and the parsers.
// live counts the parsed documents held, those read ahead included; maxLive is its peak.
func eachParsed(src Source, live *liveCount, fn func(manifest.RawDocument, manifest.Document) (bool, error)) error {
	rc, err := src.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := manifest.NewDecoder(src.Name, rc)
	queue := make(chan *parsed, parsers)
	work := make(chan *parsed, parsers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		for p := range queue { // what was read ahead, so that the reader ends
			<-p.done
		}
		wg.Wait()
	}()
	wg.Add(1 + parsers)
	go func() {
		defer wg.Done()
		defer close(queue)
		defer close(work)
		for {
			raw, err := dec.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			p := &parsed{raw: raw, err: err, done: make(chan struct{})}
			if err != nil {
				close(p.done)
			} else {
				select {
				case work <- p:
				case <-stop:
					return
				}
			}
			select {
			case queue <- p:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for range parsers {
		go func() {
			defer wg.Done()
			for p := range work {
				p.doc, p.err = manifest.ParseDocumentDeferred(src.Name, p.raw)
				live.add(1)
				close(p.done)
			}
		}()
	}
	for p := range queue {
		<-p.done
		if p.err != nil {
			return p.err
		}
		more, err := fn(p.raw, p.doc)
		live.add(-1)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// liveCount counts documents held at once, and their peak.
type liveCount struct{ n, peak atomic.Int64 }

func (l *liveCount) add(d int64) {
	n := l.n.Add(d)
	for {
		p := l.peak.Load()
		if n <= p || l.peak.CompareAndSwap(p, n) {
			return
		}
	}
}
