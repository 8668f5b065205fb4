package replica

import (
	"errors"
	"fmt"

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
