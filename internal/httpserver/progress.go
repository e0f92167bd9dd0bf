package httpserver

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WriteChunk is the most a connection sends under one write deadline: a
// file sent with sendfile goes out WriteChunk bytes at a time, each with a
// fresh deadline. A client must take WriteChunk bytes within the write
// timeout to keep its connection: 256 KiB in 30 s is about 70 kbit/s,
// below any link a machine netboots over.
const WriteChunk = 256 << 10

// progressListener hands out connections whose writes each get a fresh
// deadline: a response may take as long as it needs, but a client that
// stops reading is cut after timeout.
type progressListener struct {
	net.Listener
	timeout  time.Duration
	timeouts prometheus.Counter // nil counts nothing
	log      *slog.Logger
	server   string
}

func (l *progressListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &progressConn{Conn: c, l: l}, nil
}

// progressConn extends its write deadline before every write. It keeps
// the *net.TCPConn's ReadFrom (sendfile), in chunks of WriteChunk.
type progressConn struct {
	net.Conn
	l        *progressListener
	timedOut atomic.Bool
}

func (c *progressConn) extend() {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.l.timeout))
}

// Write sends b, at most WriteChunk bytes per deadline.
func (c *progressConn) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		part := b[:min(len(b), WriteChunk)]
		c.extend()
		w, err := c.Conn.Write(part)
		n += w
		if err != nil {
			return n, c.note(err)
		}
		b = b[w:]
	}
	return n, nil
}

// ReadFrom sends what r holds, WriteChunk bytes per deadline, through the
// connection's own ReadFrom (sendfile for a file, or a file under an
// io.LimitedReader as http.ServeContent hands over).
func (c *progressConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{c}, r)
	}
	// sendfile looks through one io.LimitedReader only: take the outer
	// one apart and chunk its reader.
	src, left := r, int64(-1)
	lr, limited := r.(*io.LimitedReader)
	if limited {
		src, left = lr.R, lr.N
	}
	var total int64
	for left != 0 {
		n := int64(WriteChunk)
		if left > 0 {
			n = min(n, left)
		}
		c.extend()
		w, err := rf.ReadFrom(&io.LimitedReader{R: src, N: n})
		total += w
		if left > 0 {
			left -= w
		}
		if err != nil {
			err = c.note(err)
			if limited {
				lr.N = left
			}
			return total, err
		}
		if w < n {
			break // src is at its end
		}
	}
	if limited {
		lr.N = left
	}
	return total, nil
}

// note counts and logs the first write of the connection that ran out of
// time, and returns err.
func (c *progressConn) note(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && c.timedOut.CompareAndSwap(false, true) {
		if c.l.timeouts != nil {
			c.l.timeouts.Inc()
		}
		c.l.log.Debug("http: client stopped reading; connection closed", "server", c.l.server,
			"remote", c.RemoteAddr().String(), "write_timeout", c.l.timeout)
	}
	return err
}

// writerOnly hides a writer's ReadFrom, so io.Copy does not call it back.
type writerOnly struct{ io.Writer }
