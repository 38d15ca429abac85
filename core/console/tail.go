package console

import (
	"bytes"
	"io"
)

// tailOffset is where the last n lines of f begin (a last line without its
// newline counts: a login prompt is one): 0 when f has fewer; f's size for
// n == 0; for n < 0, the start of the file. It reaches back at most maxTail
// bytes, then starts at a line boundary after that point.
func tailOffset(f LogFile, n int) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	limit := max(0, size-maxTail)
	if n == 0 {
		return size, nil
	}
	if n < 0 {
		n = int(^uint(0) >> 1)
	}
	end := size
	if end > 0 { // a newline that ends the file ends the last line; it starts none
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, end-1); err != nil {
			return 0, err
		}
		if b[0] == '\n' {
			end--
		}
	}
	buf := make([]byte, 8<<10)
	for end > limit {
		start := max(limit, end-int64(len(buf)))
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil && err != io.EOF {
			return 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] == '\n' {
				if n--; n == 0 {
					return start + int64(i) + 1, nil
				}
			}
		}
		end = start
	}
	if limit == 0 {
		return 0, nil
	}
	// Cut at maxTail: start at the first line boundary after it.
	chunk := make([]byte, min(int64(len(buf)), size-limit))
	if _, err := f.ReadAt(chunk, limit); err != nil && err != io.EOF {
		return 0, err
	}
	if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
		return limit + int64(i) + 1, nil
	}
	return limit, nil
}
