package scope

import (
	"fmt"
	"strings"
)

// MaxNameLength is the longest repository name accepted, as in Distribution.
const MaxNameLength = 255

// ValidateRepository checks a repository name against the distribution-spec
// grammar:
//
//	name      := component ( "/" component )*
//	component := [a-z0-9]+ ( separator [a-z0-9]+ )*
//	separator := "." | "_" | "__" | "-"+
//
// The grammar already refuses upper case, empty components ("a//b", a
// leading or trailing "/"), "." and ".." components and any "%": a name must
// arrive exactly as it is stored, so a percent-encoded slash (%2F) or a
// case variant cannot address another tenant's repository.
func ValidateRepository(name string) error {
	if name == "" {
		return fmt.Errorf("repository name is empty")
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("repository name is longer than %d characters", MaxNameLength)
	}
	for _, c := range strings.Split(name, "/") {
		if err := validComponent(c); err != nil {
			return fmt.Errorf("repository name %q: %w; names are lower-case letters, digits and separators (. _ __ -) between them, components joined by /", name, err)
		}
	}
	return nil
}

func validComponent(c string) error {
	if c == "" {
		return fmt.Errorf("empty path component")
	}
	for i := 0; i < len(c); {
		// a run of alphanumerics
		j := i
		for j < len(c) && isLowerAlnum(c[j]) {
			j++
		}
		if j == i {
			return fmt.Errorf("component %q: %q is not allowed here", c, c[i])
		}
		if j == len(c) {
			return nil
		}
		// a separator, then at least one more alphanumeric
		k := j
		switch c[k] {
		case '.':
			k++
		case '_':
			k++
			if k < len(c) && c[k] == '_' {
				k++
			}
		case '-':
			for k < len(c) && c[k] == '-' {
				k++
			}
		default:
			return fmt.Errorf("component %q: %q is not allowed", c, c[k])
		}
		if k == len(c) {
			return fmt.Errorf("component %q ends with a separator", c)
		}
		i = k
	}
	return fmt.Errorf("empty path component")
}
