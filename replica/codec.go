package replica

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"connectrpc.com/connect"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// strictJSON is the Connect JSON codec with unknown fields refused. Connect's
// own discards them, so a misspelt field (`{"key":"k","valeu":"aGk="}`)
// would store an empty value and answer 200; a wrong enum name would be
// refused by neither. protojson names the field or value in its error,
// which Connect returns as invalid_argument. Responses are written as
// Connect writes them.
type strictJSON struct{ name string }

// strictJSONCodecs replaces both names Connect registers its JSON codec
// under.
var strictJSONCodecs = []strictJSON{{name: "json"}, {name: "json; charset=utf-8"}}

func (c strictJSON) Name() string { return c.name }

func (c strictJSON) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", v)
	}
	return protojson.MarshalOptions{}.Marshal(m)
}

func (c strictJSON) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a protobuf message", v)
	}
	if len(data) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(data, m)
}

// boundedGzip is Connect's gzip decompressor, except that it stops after
// limit bytes. Connect inflates a request past its read limit to the end,
// only to report its size, so a small body that inflates to gigabytes cost
// seconds of CPU before it was refused; with the bound the refusal
// (resource_exhausted) comes after limit bytes.
type boundedGzip struct {
	gz    *gzip.Reader
	limit int64
	left  int64
}

// errInflatedTooLarge ends the inflation of a request past the node's limit.
var errInflatedTooLarge = fmt.Errorf("a compressed request inflates to more than %d bytes", MaxRequestBytes)

func newBoundedGzip(limit int64) *boundedGzip { return &boundedGzip{limit: limit, left: limit} }

func (b *boundedGzip) Read(p []byte) (int, error) {
	if b.gz == nil {
		return 0, errors.New("gzip decompressor read before reset")
	}
	if b.left <= 0 {
		return 0, errInflatedTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.gz.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedGzip) Reset(r io.Reader) error {
	b.left = b.limit
	if b.gz == nil {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		b.gz = gz
		return nil
	}
	return b.gz.Reset(r)
}

func (b *boundedGzip) Close() error {
	if b.gz == nil {
		return nil
	}
	return b.gz.Close()
}

// boundedGzipOption replaces Connect's gzip with boundedGzip, reading at
// most one byte past the request limit (so Connect still sees that the
// limit was passed).
func boundedGzipOption() connect.HandlerOption {
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return newBoundedGzip(MaxRequestBytes + 1) },
		func() connect.Compressor { return gzip.NewWriter(nil) })
}
