package image

import (
	"bytes"
	"context"
	"io"
	"os"
)

// copyBufSize is the block of every copy: zero blocks of it become holes.
const copyBufSize = 1 << 20

// CopyContext copies r to w until EOF or until ctx ends, calling progress (if
// not nil) with the running count: the one context-aware copy. When w is a
// file, all-zero blocks are skipped (seeked over) so disks stay sparse, and the
// file is given its full size at the end.
func CopyContext(ctx context.Context, w io.Writer, r io.Reader, progress func(done int64)) (int64, error) {
	f, sparse := w.(*os.File)
	buf := make([]byte, copyBufSize)
	zero := make([]byte, copyBufSize)
	var n int64
	var hole bool // the last block was seeked over
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := io.ReadFull(r, buf)
		if m > 0 {
			var werr error
			if sparse && bytes.Equal(buf[:m], zero[:m]) {
				_, werr = f.Seek(int64(m), io.SeekCurrent)
				hole = true
			} else {
				_, werr = w.Write(buf[:m])
				hole = false
			}
			if werr != nil {
				return n, werr
			}
			n += int64(m)
			if progress != nil {
				progress(n)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	if sparse && hole { // a trailing hole needs the size set explicitly
		if err := f.Truncate(n); err != nil {
			return n, err
		}
	}
	return n, nil
}
