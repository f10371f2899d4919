package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
)

// loadToken resolves APP_API_TOKEN_FILE into APIToken. Both set is refused:
// an operator who rotated one would not know which is in force.
func (c *Config) loadToken(set func(name, msg string)) {
	if c.APITokenFile == "" {
		if c.APIToken != "" && strings.TrimSpace(c.APIToken) == "" {
			set("API_TOKEN", "must not be blank")
		}
		return
	}
	if c.APIToken != "" {
		set("API_TOKEN_FILE", "set either APP_API_TOKEN or APP_API_TOKEN_FILE, not both")
		return
	}
	b, err := os.ReadFile(c.APITokenFile)
	if err != nil {
		set("API_TOKEN_FILE", fmt.Sprintf("cannot read the token: %v", err))
		return
	}
	// Secrets written with echo end in a newline the client never sends.
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		set("API_TOKEN_FILE", fmt.Sprintf("%s is empty (an empty token would leave start and stop open)", c.APITokenFile))
		return
	}
	c.APIToken = tok
}

// secret names the variables whose values are never printed.
var secret = map[string]bool{
	Prefix + "AZURE_CONNECTION_STRING": true,
	Prefix + "AZURE_ACCOUNT_KEY":       true,
	Prefix + "API_TOKEN":               true,
}

// Effective lists every variable with the value in force (defaults
// included), secrets masked, in name order.
func Effective(environ map[string]string) ([][2]string, error) {
	c, err := Load(environ)
	if err != nil {
		return nil, err
	}
	values := c.values()
	out := make([][2]string, 0, len(values))
	for _, name := range Names() {
		v := values[name]
		if secret[name] && v != "" {
			v = "***** (set)"
		}
		if name == Prefix+"API_TOKEN" && c.APITokenFile != "" && v != "" {
			v = "***** (from APP_API_TOKEN_FILE)"
		}
		out = append(out, [2]string{name, v})
	}
	return out, nil
}

// values formats each field as its variable would be written; a field
// without a default left at its zero value prints as unset.
func (c Config) values() map[string]string {
	v := reflect.ValueOf(c)
	t := v.Type()
	out := make(map[string]string, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		s := ""
		switch {
		case fv.Kind() == reflect.Slice:
			parts := make([]string, fv.Len())
			for j := range parts {
				parts[j] = fmt.Sprint(fv.Index(j).Interface())
			}
			s = strings.Join(parts, ",")
		case fv.IsZero() && f.Tag.Get("envDefault") == "":
		default:
			s = fmt.Sprint(fv.Interface())
		}
		out[Prefix+f.Tag.Get("env")] = s
	}
	return out
}
