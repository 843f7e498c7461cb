package authz

import "fmt"

// TagPattern is an immutable-tag pattern: tag characters and "*", which
// matches any run of characters (v*, release-*, *-prod, or * for every tag).
// It matches the whole tag.
type TagPattern struct{ raw string }

// ParseTagPattern checks a tag pattern.
func ParseTagPattern(s string) (TagPattern, error) {
	if s == "" || len(s) > 128 {
		return TagPattern{}, fmt.Errorf("immutable tag pattern %q must be 1 to 128 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '*' || c == '_' || c == '.' || c == '-' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')) {
			return TagPattern{}, fmt.Errorf("immutable tag pattern %q: %q is not a tag character or *", s, c)
		}
	}
	return TagPattern{raw: s}, nil
}

func (p TagPattern) String() string { return p.raw }

// Match reports whether the tag matches the whole pattern.
func (p TagPattern) Match(tag string) bool {
	if p.raw == "" {
		return false
	}
	return glob(p.raw, tag)
}

// glob matches with "*" as the only metacharacter, in linear time: on a
// mismatch it only backtracks to the last star.
func glob(pattern, s string) bool {
	px, sx := 0, 0
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && pattern[px] == '*':
			star, mark = px, sx
			px++
		case px < len(pattern) && pattern[px] == s[sx]:
			px++
			sx++
		case star >= 0:
			px = star + 1
			mark++
			sx = mark
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
