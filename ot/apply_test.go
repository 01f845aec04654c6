package ot

import (
	"errors"
	"testing"
)

// applyCases are shared by the string Apply and Text.Apply tests.
var applyCases = []struct {
	name string
	text string
	op   Op
	want string
}{
	{"contract example", "Seoul 2013", Op{{Retain: 6}, {Delete: 4}, {Insert: "Conference 2013"}}, "Seoul Conference 2013"},
	{"contract example canonical", "Seoul 2013", Op{}.Retain(6).Delete(4).Insert("Conference 2013"), "Seoul Conference 2013"},
	{"empty text, empty op", "", Op{}, ""},
	{"empty text, nil op", "", nil, ""},
	{"insert into empty", "", Op{{Insert: "hello"}}, "hello"},
	{"delete everything", "hello", Op{{Delete: 5}}, ""},
	{"retain everything", "hello", Op{{Retain: 5}}, "hello"},
	{"insert at end", "ab", Op{{Retain: 2}, {Insert: "c"}}, "abc"},
	{"emoji is one code point", "a🌐b", Op{{Retain: 1}, {Delete: 1}, {Insert: "🌍"}, {Retain: 1}}, "a🌍b"},
	{"insert after emoji", "🌐🌐", Op{{Retain: 1}, {Insert: "-"}, {Retain: 1}}, "🌐-🌐"},
	{"ZWJ sequence is five code points", "👨\u200d👩\u200d👧!", Op{{Retain: 5}, {Insert: "?"}, {Retain: 1}}, "👨\u200d👩\u200d👧?!"},
	{"cut inside a ZWJ sequence", "👨\u200d👩\u200d👧!", Op{{Retain: 2}, {Delete: 3}, {Retain: 1}}, "👨\u200d!"},
	{"combining mark is its own code point", "e\u0301te", Op{{Retain: 1}, {Delete: 1}, {Retain: 2}}, "ete"},
	{"add combining mark", "ete", Op{{Retain: 1}, {Insert: "\u0301"}, {Retain: 2}}, "e\u0301te"},
	{"CRLF is two code points", "a\r\nb", Op{{Retain: 1}, {Insert: "\n"}, {Delete: 2}, {Retain: 1}}, "a\nb"},
	{"Hangul", "서울 2013", Op{{Retain: 2}, {Insert: "특별시"}, {Retain: 5}}, "서울특별시 2013"},
	{"CJK", "首尔会议", Op{{Delete: 2}, {Insert: "北京"}, {Retain: 2}}, "北京会议"},
	{"Arabic", "مرحبا بالعالم", Op{{Retain: 5}, {Delete: 8}}, "مرحبا"},
	{"non-canonical components", "abc", Op{{Retain: 1}, {Retain: 1}, {Delete: 1}, {Insert: "x"}, {Insert: "y"}}, "abxy"},
	{"invalid UTF-8 byte counts as one code point", "a\xffb", Op{{Retain: 1}, {Delete: 1}, {Retain: 1}}, "ab"},
	{"retained invalid UTF-8 becomes U+FFFD", "a\xff\xfeb", Op{{Retain: 4}}, "a\ufffd\ufffdb"},
}

func TestApply(t *testing.T) {
	for _, tt := range applyCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.text, tt.op)
			if err != nil {
				t.Fatalf("Apply(%q, %s): %v", tt.text, opString(tt.op), err)
			}
			if got != tt.want {
				t.Errorf("Apply(%q, %s) = %q; want %q", tt.text, opString(tt.op), got, tt.want)
			}
		})
	}
}

var applyErrorCases = []struct {
	name string
	text string
	op   Op
}{
	{"op too short", "hello", Op{{Retain: 4}}},
	{"op too long", "hello", Op{{Retain: 6}}},
	{"delete past end", "hello", Op{{Retain: 3}, {Delete: 3}}},
	{"empty op on non-empty text", "x", Op{}},
	{"byte length instead of code points", "首尔", Op{{Retain: 6}}},
	{"UTF-16 length instead of code points", "🌐", Op{{Retain: 2}}},
	{"empty component", "ab", Op{{Retain: 1}, {}, {Retain: 1}}},
	{"two fields set", "ab", Op{{Retain: 1, Delete: 1}, {Retain: 1}}},
	{"negative retain", "ab", Op{{Retain: -1}, {Retain: 3}}},
	{"negative delete", "ab", Op{{Delete: -1}, {Retain: 3}}},
	{"invalid UTF-8 insert", "ab", Op{{Retain: 2}, {Insert: "\xff"}}},
	{"overflowing counts", "ab", Op{{Retain: 1 << 62}, {Retain: 1 << 62}, {Retain: 1 << 62}, {Retain: 1 << 62}, {Retain: 2}}},
}

func TestApplyErrors(t *testing.T) {
	for _, tt := range applyErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.text, tt.op)
			if !errors.Is(err, ErrBadOp) {
				t.Errorf("Apply(%q, %v) = %q, %v; want ErrBadOp", tt.text, tt.op, got, err)
			}
		})
	}
}
