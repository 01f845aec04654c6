package ot

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Op
	}{
		{"contract example", `[6, -4, "Conference 2013"]`, Op{{Retain: 6}, {Insert: "Conference 2013"}, {Delete: 4}}},
		{"empty op", `[]`, Op{}},
		{"empty op with spaces", " \t\r\n[ \n ] \n", Op{}},
		{"retain only", `[5]`, Op{{Retain: 5}}},
		{"insert only", `["hello"]`, Op{{Insert: "hello"}}},
		{"delete only", `[-3]`, Op{{Delete: 3}}},
		{"adjacent retains merge", `[2,3]`, Op{{Retain: 5}}},
		{"adjacent deletes merge", `[1,-2,-3]`, Op{{Retain: 1}, {Delete: 5}}},
		{"adjacent inserts merge", `["a","b"]`, Op{{Insert: "ab"}}},
		{"delete then insert becomes insert then delete", `[-1,"x"]`, Op{{Insert: "x"}, {Delete: 1}}},
		{"insert delete insert merges inserts", `["a",-1,"b",2]`, Op{{Insert: "ab"}, {Delete: 1}, {Retain: 2}}},
		{"escapes", `["\"\\\/\b\f\n\r\t\u0041\u00e9\u2028"]`, Op{{Insert: "\"\\/\b\f\n\r\tAé\u2028"}}},
		{"surrogate pair escape", `["\ud83c\udf10"]`, Op{{Insert: "🌐"}}},
		{"upper-case hex escape", `["\uD83C\uDF10"]`, Op{{Insert: "🌐"}}},
		{"raw emoji", `[1,"🌐",-1]`, Op{{Retain: 1}, {Insert: "🌐"}, {Delete: 1}}},
		{"ZWJ sequence", `["👨‍👩‍👧"]`, Op{{Insert: "👨\u200d👩\u200d👧"}}},
		{"combining mark", `["e\u0301"]`, Op{{Insert: "e\u0301"}}},
		{"Hangul CJK Arabic", `["서울","首尔","مرحبا"]`, Op{{Insert: "서울首尔مرحبا"}}},
		{"CRLF escaped", `["a\r\nb"]`, Op{{Insert: "a\r\nb"}}},
		{"largest count", `[9007199254740991]`, Op{{Retain: MaxLen}}},
		{"largest delete", `[-9007199254740991]`, Op{{Delete: MaxLen}}},
		{"retains sum to max", `[9007199254740990, 1]`, Op{{Retain: MaxLen}}},
		{"escape then raw multibyte", `["\n首"]`, Op{{Insert: "\n首"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse(%s): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%s) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if !isCanonical(got) {
				t.Errorf("Parse(%s) = %s is not canonical", tt.in, opString(got))
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"zero", `[0]`},
		{"negative zero", `[-0]`},
		{"empty string", `[""]`},
		{"null element", `[null]`},
		{"fraction", `[1.5]`},
		{"integral fraction", `[1.0]`},
		{"exponent", `[1e3]`},
		{"upper exponent", `[1E3]`},
		{"negative exponent", `[-1e3]`},
		{"true", `[true]`},
		{"false", `[false]`},
		{"object element", `[{}]`},
		{"nested array", `[[1]]`},
		{"top-level string", `"abc"`},
		{"top-level object", `{"ops":[1]}`},
		{"top-level number", `1`},
		{"top-level null", `null`},
		{"top-level true", `true`},
		{"empty input", ``},
		{"only whitespace", " \n\t"},
		{"int64 overflow", `[9223372036854775808]`},
		{"huge number", `[` + strings.Repeat("9", 100000) + `]`},
		{"beyond 2^53", `[9007199254740992]`},
		{"2^62 twice", `[4611686018427387904, 4611686018427387904]`},
		{"2^52 twice delete+retain", `[4503599627370496, -4503599627370496]`},
		{"sum beyond max", `[9007199254740991, 1]`},
		{"target beyond max", `[9007199254740991, "x"]`},
		{"int64 min", `[-9223372036854775808]`},
		{"truncated after comma", `[1, `},
		{"truncated number", `[1`},
		{"truncated string", `["abc`},
		{"truncated escape", `["abc\`},
		{"truncated unicode escape", `["\u00`},
		{"only bracket", `[`},
		{"invalid UTF-8", "[\"a\xffb\"]"},
		{"truncated UTF-8", "[\"\xe9\xa6\"]"},
		{"overlong encoding", "[\"\xc0\xaf\"]"},
		{"UTF-8 encoded surrogate", "[\"\xed\xa0\x80\"]"},
		{"invalid UTF-8 after escape", "[\"\\n\xff\"]"},
		{"lone high surrogate", `["\ud800"]`},
		{"lone low surrogate", `["\udc00"]`},
		{"high surrogate then letter", `["\ud800\u0041"]`},
		{"high surrogate at end", `["a\ud83c"]`},
		{"bad escape", `["\x41"]`},
		{"short unicode escape", `["\u12"]`},
		{"non-hex unicode escape", `["\u12g4"]`},
		{"raw newline in string", "[\"a\nb\"]"},
		{"raw control char", "[\"\x01\"]"},
		{"leading zero", `[01]`},
		{"negative leading zero", `[-01]`},
		{"plus sign", `[+1]`},
		{"bare minus", `[-]`},
		{"hex number", `[0x10]`},
		{"NaN", `[NaN]`},
		{"Infinity", `[Infinity]`},
		{"trailing comma", `[1,]`},
		{"leading comma", `[,1]`},
		{"missing comma", `[1 2]`},
		{"trailing garbage", `[1]x`},
		{"two arrays", `[1][2]`},
		{"extra bracket", `[1]]`},
		{"single quotes", `['a']`},
		{"byte order mark", "\xef\xbb\xbf[1]"},
		{"deep nesting", strings.Repeat("[", 100000)},
		{"deep nesting closed", strings.Repeat("[", 100000) + strings.Repeat("]", 100000)},
		{"deep object nesting", `[` + strings.Repeat(`{"a":`, 100000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got, err := Parse([]byte(tt.in))
			if !errors.Is(err, ErrBadOp) {
				t.Fatalf("Parse(%.40q) = %v, %v; want an error wrapping ErrBadOp", tt.in, got, err)
			}
			if got != nil {
				t.Errorf("Parse(%.40q) returned op %v with the error", tt.in, got)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Parse(%.40q) took %v", tt.in, d)
			}
			var op Op
			if err := op.UnmarshalJSON([]byte(tt.in)); !errors.Is(err, ErrBadOp) {
				t.Errorf("UnmarshalJSON(%.40q) = %v; want an error wrapping ErrBadOp", tt.in, err)
			}
		})
	}
}

func TestMarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		op   Op
		want string
	}{
		{"nil", nil, `[]`},
		{"empty", Op{}, `[]`},
		{"contract example", Op{{Retain: 6}, {Insert: "Conference 2013"}, {Delete: 4}}, `[6,"Conference 2013",-4]`},
		{"quotes and backslash", Op{{Insert: `a"b\c`}}, `["a\"b\\c"]`},
		{"newlines and tab", Op{{Insert: "a\r\n\tb"}}, `["a\r\n\tb"]`},
		{"control characters", Op{{Insert: "\x00\x01\x1f"}}, `["\u0000\u0001\u001f"]`},
		{"line separators", Op{{Insert: "\u2028\u2029"}}, `["\u2028\u2029"]`},
		{"multibyte kept raw", Op{{Insert: "🌐서울首尔مرحبا e\u0301"}}, `["🌐서울首尔مرحبا e` + "\u0301" + `"]`},
		{"html characters kept", Op{{Insert: "<a&b>"}}, `["<a&b>"]`},
		{"non-canonical kept as is", Op{{Retain: 1}, {Retain: 2}, {Delete: 1}, {Insert: "x"}}, `[1,2,-1,"x"]`},
		{"large counts", Op{{Retain: MaxLen}}, `[9007199254740991]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.op.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON() = %s; want %s", got, tt.want)
			}
			// The standard decoder must read it as the same values.
			var generic []any
			if err := json.Unmarshal(got, &generic); err != nil {
				t.Fatalf("encoding/json cannot read %s: %v", got, err)
			}
			if len(generic) != len(tt.op) {
				t.Fatalf("encoding/json read %d elements; want %d", len(generic), len(tt.op))
			}
			for i, c := range tt.op {
				switch v := generic[i].(type) {
				case string:
					if v != c.Insert {
						t.Errorf("element %d = %q; want insert %q", i, v, c.Insert)
					}
				case float64:
					if want := float64(c.Retain - c.Delete); v != want {
						t.Errorf("element %d = %v; want %v", i, v, want)
					}
				}
			}
		})
	}
}

func TestMarshalJSONRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		op   Op
	}{
		{"empty component", Op{{}}},
		{"two fields", Op{{Retain: 1, Delete: 1}}},
		{"retain and insert", Op{{Retain: 1, Insert: "x"}}},
		{"negative retain", Op{{Retain: -1}}},
		{"negative delete", Op{{Delete: -2}}},
		{"invalid UTF-8", Op{{Insert: "\xff"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.op.MarshalJSON(); !errors.Is(err, ErrBadOp) {
				t.Errorf("MarshalJSON() = %s, %v; want ErrBadOp", got, err)
			}
		})
	}
}

// TestJSONInStructs checks that Op works as a field with encoding/json, the
// way the server embeds it in messages.
func TestJSONInStructs(t *testing.T) {
	type msg struct {
		Rev int `json:"rev"`
		Op  Op  `json:"op"`
	}
	in := msg{Rev: 7, Op: Op{{Retain: 2}, {Insert: "서울"}, {Delete: 1}}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), `{"rev":7,"op":[2,"서울",-1]}`; got != want {
		t.Errorf("json.Marshal = %s; want %s", got, want)
	}
	var out msg
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	bad := []string{`{"rev":1,"op":[0]}`, `{"rev":1,"op":null}`, `{"rev":1,"op":[1.5]}`, `{"rev":1,"op":"x"}`}
	for _, s := range bad {
		if err := json.Unmarshal([]byte(s), &out); !errors.Is(err, ErrBadOp) {
			t.Errorf("json.Unmarshal(%s) = %v; want ErrBadOp", s, err)
		}
	}
}

// TestParseAgreesWithEncodingJSON feeds Parse strings encoded by Go's own
// encoder (which escapes differently: \u003c, \ufffd, ...).
func TestParseAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range append(pieces, "<script>&", "\u007f", "\ufffd", "\U0010FFFF", "\x00") {
		data, err := json.Marshal([]any{1, s, -1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(data)
		if err != nil {
			t.Fatalf("Parse(%s): %v", data, err)
		}
		want := Op{{Retain: 1}, {Insert: s}, {Delete: 1}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Parse(%s) mismatch (-want +got):\n%s", data, diff)
		}
	}
}

func TestBuilders(t *testing.T) {
	tests := []struct {
		name string
		got  Op
		want Op
	}{
		{"empty", Op{}, Op{}},
		{"retain merges", Op{}.Retain(2).Retain(3), Op{{Retain: 5}}},
		{"delete merges", Op{}.Delete(2).Delete(3), Op{{Delete: 5}}},
		{"insert merges", Op{}.Insert("a").Insert("🌐"), Op{{Insert: "a🌐"}}},
		{"zero and negative are no-ops", Op{}.Retain(0).Retain(-1).Delete(0).Delete(-5).Insert(""), Op{}},
		{"insert after delete goes before it", Op{}.Retain(1).Delete(2).Insert("x"), Op{{Retain: 1}, {Insert: "x"}, {Delete: 2}}},
		{"insert after insert+delete merges", Op{}.Insert("a").Delete(2).Insert("b"), Op{{Insert: "ab"}, {Delete: 2}}},
		{"delete after insert stays after", Op{}.Insert("a").Delete(1), Op{{Insert: "a"}, {Delete: 1}}},
		{"all kinds", Op{}.Retain(6).Delete(4).Insert("Conference 2013"), Op{{Retain: 6}, {Insert: "Conference 2013"}, {Delete: 4}}},
		{"nil receiver", Op(nil).Retain(1), Op{{Retain: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			if !isCanonical(tt.got) {
				t.Errorf("%s is not canonical", opString(tt.got))
			}
		})
	}
}

func TestLengths(t *testing.T) {
	tests := []struct {
		name                   string
		op                     Op
		base, target, inserted int
		noop                   bool
	}{
		{"nil", nil, 0, 0, 0, true},
		{"retain", Op{{Retain: 4}}, 4, 4, 0, true},
		{"contract example", Op{{Retain: 6}, {Insert: "Conference 2013"}, {Delete: 4}}, 10, 21, 15, false},
		{"emoji is one code point", Op{{Insert: "🌐"}}, 0, 1, 1, false},
		{"ZWJ sequence is five", Op{{Insert: "👨\u200d👩\u200d👧"}}, 0, 5, 5, false},
		{"combining mark is two", Op{{Retain: 1}, {Insert: "e\u0301"}}, 1, 3, 2, false},
		{"CRLF is two", Op{{Insert: "\r\n"}, {Delete: 2}}, 2, 2, 2, false},
		{"Hangul, CJK, Arabic", Op{{Insert: "서울首尔مرحبا"}}, 0, 9, 9, false},
		{"delete only", Op{{Delete: 3}}, 3, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.op.BaseLen(); got != tt.base {
				t.Errorf("BaseLen() = %d; want %d", got, tt.base)
			}
			if got := tt.op.TargetLen(); got != tt.target {
				t.Errorf("TargetLen() = %d; want %d", got, tt.target)
			}
			if got := tt.op.InsertedRunes(); got != tt.inserted {
				t.Errorf("InsertedRunes() = %d; want %d", got, tt.inserted)
			}
			if got := tt.op.IsNoop(); got != tt.noop {
				t.Errorf("IsNoop() = %v; want %v", got, tt.noop)
			}
		})
	}
}
