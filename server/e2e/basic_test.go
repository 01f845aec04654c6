package e2e

import (
	"net/http"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
)

func TestBasicCoEditing(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	s.Summit(t, "seoul-2013")
	s.Doc(t, "seoul-2013", "chair-summary", "Seoul 2013")
	kor := s.Token(t, "seoul-2013", "delegate", "KOR")
	gbr := s.Token(t, "seoul-2013", "delegate", "GBR")

	a := s.NewClient(t, "seoul-2013", "chair-summary", kor, "a")
	b := s.NewClient(t, "seoul-2013", "chair-summary", gbr, "b")
	if err := a.Edit(ot.Op{}.Retain(6).Delete(4).Insert("Conference 2013")); err != nil {
		t.Fatal(err)
	}
	if err := b.Edit(ot.Op{}.Insert("서울 ").Retain(10)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*servertest.Client{a, b} {
		if err := c.Settle(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*servertest.Client{a, b} {
		if err := c.Pump(200 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	want := "서울 Seoul Conference 2013"
	if a.Text != want || b.Text != want {
		t.Fatalf("a=%q b=%q; want %q", a.Text, b.Text, want)
	}
	d := s.GetDoc(t, "seoul-2013", "chair-summary", kor)
	if d.Draft == nil || d.Draft.Text != want || d.Draft.Version != 2 {
		t.Fatalf("draft = %+v; want %q at 2", d.Draft, want)
	}
	// The full-text merge keeps a concurrent edit: a appends at version 3,
	// the PUT made on version 2 adds a word in the middle.
	if err := a.Edit(ot.Op{}.Retain(ot.NewText(want).Len()).Insert(" — draft")); err != nil {
		t.Fatal(err)
	}
	if err := a.Settle(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	r := s.MustDo(t, http.StatusOK, "PUT", "/api/summits/seoul-2013/docs/chair-summary/draft", gbr,
		map[string]any{"base_version": 2, "text": "서울 Seoul Cyber Conference 2013"})
	var out struct {
		Version uint64
		Text    string
	}
	r.JSON(t, &out)
	if out.Text != "서울 Seoul Cyber Conference 2013 — draft" || out.Version != 4 {
		t.Fatalf("PUT merged to %+v", out)
	}
	s.Restart(t)
	d = s.GetDoc(t, "seoul-2013", "chair-summary", kor)
	if d.Draft.Text != out.Text || d.Draft.Version != 4 {
		t.Fatalf("after restart draft = %+v", d.Draft)
	}
}
