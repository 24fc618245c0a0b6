package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// The decoder walks a yaml.Node tree against the schema types by reflection,
// applying each setting it finds on top of what the target already holds
// (the defaults). Scalars and structs overlay field by field; maps and lists
// are replaced whole. A null value (`key:`, `key: ~`) leaves the target as it
// is. Every mistake becomes a Problem naming the line and field.

const (
	// aliasBudget bounds alias dereferences and merges, and workBudget the
	// mapping entries and list items walked, so that a small file of nested
	// anchors cannot make decoding explode.
	aliasBudget = 10000
	workBudget  = 1000000
	// maxProblems bounds the problems reported for one file.
	maxProblems = 100
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	blockType    = reflect.TypeFor[Block]()
)

// position is where a setting was written, and whether its value came from
// the environment.
type position struct {
	line int
	// env describes an interpolated value ("the value of ${NAME}"); empty
	// for a value written literally.
	env string
	// text is the scalar's text after interpolation; empty for secrets.
	text string
}

type decoder struct {
	file   string
	getenv func(string) (string, bool)
	probs  []Problem
	// dropped counts problems beyond maxProblems.
	dropped int
	// bad holds the fields that already have a problem; validation does not
	// pile more on them.
	bad map[string]bool
	// pos records every setting the file wrote, by field path.
	pos map[string]position
	// skip holds the provider and chat blocks ("providers.x") that were
	// rejected as a whole; validation leaves them alone.
	skip map[string]bool
	// secret holds the fields tagged secret:"true"; their values, and
	// everything below them, are never shown.
	secret map[string]bool
	// hidden are the values never to appear in a message: secrets and
	// values from the environment.
	hidden []string
	// families are the kinded maps by field: "providers", "chats".
	families map[string]family
	budget   int
	work     int
	reported map[*yaml.Node]bool
}

func newDecoder(file string, getenv func(string) (string, bool), kinds Kinds) *decoder {
	return &decoder{
		file:   file,
		getenv: getenv,
		pos:    map[string]position{},
		bad:    map[string]bool{},
		skip:   map[string]bool{},
		secret: map[string]bool{},
		families: map[string]family{
			"providers": {what: "provider", kinds: kinds.Providers},
			"chats":     {what: "chat platform", kinds: kinds.Chats},
		},
		budget:   aliasBudget,
		work:     workBudget,
		reported: map[*yaml.Node]bool{},
	}
}

func (d *decoder) add(line int, field, msg string) {
	d.bad[field] = true
	if len(d.probs) >= maxProblems {
		d.dropped++
		return
	}
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Field: field, Message: msg})
}

// once reports a problem about node n only the first time it is seen, for
// nodes reached more than once through anchors.
func (d *decoder) once(n *yaml.Node, line int, field, msg string) {
	if d.reported[n] {
		return
	}
	d.reported[n] = true
	d.add(line, field, msg)
}

// show is how a message may refer to a field's value: quoted when it was
// written literally, "the value of ${NAME}" when it came from the
// environment, "the value" for a secret.
func (d *decoder) show(field, value string) string {
	if p, ok := d.pos[field]; ok && p.env != "" {
		return p.env
	}
	if d.isSecret(field) {
		return "the value"
	}
	return strconv.Quote(value)
}

// isSecret reports whether field or one of its parents is tagged secret.
func (d *decoder) isSecret(field string) bool {
	for f := field; f != ""; {
		if d.secret[f] {
			return true
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			return false
		}
		f = f[:i]
	}
	return false
}

// hide blanks out secrets and environment values that a message quotes.
// Values shorter than 4 bytes are left alone: they would garble every
// message and hide nothing worth hiding.
func (d *decoder) hide(msg string) string {
	for _, h := range d.hidden {
		if len(h) >= 4 {
			msg = strings.ReplaceAll(msg, h, "***")
		}
	}
	return msg
}

// resolve follows an alias to its anchored node. It returns nil when the
// alias budget is spent (after reporting it).
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 10; i++ {
		if !d.spend(n) {
			return nil
		}
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func (d *decoder) spend(n *yaml.Node) bool {
	d.budget--
	if d.budget < 0 {
		if d.budget == -1 {
			d.add(n.Line, "", "too many aliases and merges (<<); simplify the anchors")
		}
		return false
	}
	return true
}

// toil charges the walk of n's children against the work budget.
func (d *decoder) toil(n *yaml.Node) bool {
	if d.work < 0 {
		return false
	}
	d.work -= len(n.Content)
	if d.work < 0 {
		d.add(n.Line, "", "the file is too large once its aliases are expanded; simplify the anchors")
		return false
	}
	return true
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describeNode names a node's shape for messages.
func describeNode(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

// join appends a key to a field path. A key that is not a plain word is
// quoted, so that one problem always stays on one line.
func join(parent, name string) string {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '"'
	}) {
		name = strconv.Quote(name)
	}
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// document decodes a whole file's root node onto c.
func (d *decoder) document(root *yaml.Node, c *Config) {
	if root == nil || root.Kind == 0 {
		return
	}
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return
		}
		root = root.Content[0]
	}
	n := d.resolve(root)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.add(root.Line, "", "the file must be a mapping of settings (such as `server:`), not "+describeNode(n))
		return
	}
	d.value(n, reflect.ValueOf(c).Elem(), "")
}

// value decodes node n into v; field is v's path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, field string) {
	n = d.resolve(n)
	if isNull(n) {
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		s, ok := d.text(n, field, "a duration such as 120s")
		if !ok {
			return
		}
		dur, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			msg := d.show(field, s) + " is not a duration such as 120s"
			if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil {
				msg += " (add a unit: ms, s, m or h)"
			}
			d.add(d.line(field, n), field, msg)
			return
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.String:
		s, ok := d.text(n, field, "a string")
		if ok {
			v.SetString(s)
		}
	case t.Kind() == reflect.Bool:
		s, ok := d.text(n, field, "true or false")
		if !ok {
			return
		}
		switch s = strings.TrimSpace(s); {
		case strings.EqualFold(s, "true"):
			v.SetBool(true)
		case strings.EqualFold(s, "false"):
			v.SetBool(false)
		default:
			d.add(d.line(field, n), field, d.show(field, s)+" is not true or false")
		}
	case v.CanInt():
		s, ok := d.text(n, field, "a whole number")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(number(s), 10, t.Bits())
		if err != nil {
			d.add(d.line(field, n), field, d.show(field, s)+" is not a whole number"+rangeHint(err))
			return
		}
		v.SetInt(i)
	case v.CanUint():
		s, ok := d.text(n, field, "a whole number")
		if !ok {
			return
		}
		i, err := strconv.ParseUint(number(s), 10, t.Bits())
		if err != nil {
			d.add(d.line(field, n), field, d.show(field, s)+" is not a whole number of at least 0"+rangeHint(err))
			return
		}
		v.SetUint(i)
	case v.CanFloat():
		s, ok := d.text(n, field, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(number(s), t.Bits())
		if err != nil {
			d.add(d.line(field, n), field, d.show(field, s)+" is not a number"+rangeHint(err))
			return
		}
		v.SetFloat(f)
	case t.Kind() == reflect.Pointer:
		e := reflect.New(t.Elem())
		before := len(d.probs) + d.dropped
		d.value(n, e.Elem(), field)
		if len(d.probs)+d.dropped == before {
			v.Set(e)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.add(d.line(field, n), field, "expected a mapping of settings, not "+describeNode(n))
			return
		}
		d.fields(d.entries(n, field), v, field)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		d.mapping(n, v, field)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.add(d.line(field, n), field, "expected a list, not "+describeNode(n))
			return
		}
		if !d.toil(n) {
			return
		}
		s := reflect.MakeSlice(t, 0, len(n.Content))
		for i, item := range n.Content {
			f := fmt.Sprintf("%s[%d]", field, i)
			d.pos[f] = position{line: item.Line}
			e := reflect.New(t.Elem()).Elem()
			d.value(item, e, f)
			s = reflect.Append(s, e)
		}
		v.Set(s)
	default:
		d.add(d.line(field, n), field, fmt.Sprintf("internal error: settings of Go type %s are not supported", t))
	}
}

// number is a scalar's text as strconv reads numbers: YAML allows _ as a
// digit separator.
func number(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "_", "") }

func rangeHint(err error) string {
	if errors.Is(err, strconv.ErrRange) {
		return " (out of range)"
	}
	return ""
}

// line is the line of field when the file wrote it, else the node's.
func (d *decoder) line(field string, n *yaml.Node) int {
	if p, ok := d.pos[field]; ok && p.line > 0 {
		return p.line
	}
	return n.Line
}

// text is the interpolated text of scalar node n, or false after reporting
// why there is none. want names the expected value for messages.
func (d *decoder) text(n *yaml.Node, field, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.add(d.line(field, n), field, "expected "+want+", not "+describeNode(n))
		return "", false
	}
	secret := d.isSecret(field)
	s, names, probs := expand(n.Value, d.getenv, !secret)
	p := d.pos[field]
	if p.line == 0 {
		p.line = n.Line
	}
	p.env, p.text = "", s
	if len(names) > 0 {
		p.env = envSource(n.Value, names)
	}
	if secret || len(names) > 0 {
		p.text = ""
		if s != "" {
			d.hidden = append(d.hidden, s)
		}
	}
	d.pos[field] = p
	for _, msg := range probs {
		d.add(p.line, field, msg)
	}
	return s, len(probs) == 0
}

// entry is one key of a mapping, after merges.
type entry struct {
	key  *yaml.Node // where the key was written
	name string
	val  *yaml.Node
}

// entries lists a mapping's keys, reporting duplicates and applying merge
// keys (<<), whose entries never override keys written explicitly.
func (d *decoder) entries(n *yaml.Node, field string) []entry {
	var out []entry
	d.collect(n, field, &out, map[string]bool{})
	return out
}

func (d *decoder) collect(n *yaml.Node, field string, out *[]entry, seen map[string]bool) {
	if !d.toil(n) {
		return
	}
	var merges []*yaml.Node
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		rk := d.resolve(k)
		if rk == nil {
			continue
		}
		if rk.Kind != yaml.ScalarNode {
			d.once(k, k.Line, field, "keys must be plain names, not "+describeNode(rk))
			continue
		}
		if rk.Tag == "!!merge" {
			merges = append(merges, val)
			continue
		}
		name := rk.Value
		if line, dup := first[name]; dup {
			d.once(k, k.Line, join(field, name), fmt.Sprintf("duplicate key (first defined on line %d)", line))
			continue
		}
		first[name] = k.Line
		if seen[name] {
			continue
		}
		seen[name] = true
		*out = append(*out, entry{key: k, name: name, val: val})
	}
	for _, m := range merges {
		rm := d.resolve(m)
		var maps []*yaml.Node
		switch {
		case rm == nil:
		case rm.Kind == yaml.MappingNode:
			maps = append(maps, rm)
		case rm.Kind == yaml.SequenceNode:
			for _, item := range rm.Content {
				if ri := d.resolve(item); ri != nil && ri.Kind == yaml.MappingNode {
					maps = append(maps, ri)
				} else if ri != nil {
					d.once(item, item.Line, join(field, "<<"), "a merge needs a mapping or a list of mappings, not "+describeNode(ri))
				}
			}
		default:
			d.once(m, m.Line, join(field, "<<"), "a merge needs a mapping or a list of mappings, not "+describeNode(rm))
		}
		for _, mm := range maps {
			if !d.spend(m) {
				return
			}
			d.collect(mm, field, out, seen)
		}
	}
}

// structFields maps a struct type's yaml names to field indexes.
func structFields(t reflect.Type) (names []string, index map[string]int) {
	index = map[string]int{}
	if t.Kind() != reflect.Struct {
		return nil, index
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		names = append(names, name)
		index[name] = i
	}
	return names, index
}

// fields decodes a mapping's entries into struct v.
func (d *decoder) fields(entries []entry, v reflect.Value, field string) {
	t := v.Type()
	names, index := structFields(t)
	for _, e := range entries {
		if strings.HasPrefix(e.name, "x-") {
			continue
		}
		f := join(field, e.name)
		i, ok := index[e.name]
		if !ok {
			d.add(e.key.Line, f, unknownField(e.name, names))
			continue
		}
		if t.Field(i).Tag.Get("secret") == "true" {
			d.secret[f] = true
		}
		if isNull(d.resolve(e.val)) {
			continue
		}
		d.pos[f] = position{line: e.key.Line}
		d.value(e.val, v.Field(i), f)
	}
}

func unknownField(name string, known []string) string {
	msg := "unknown field"
	if s := suggest(name, known); s != "" && s != name {
		return msg + " (did you mean " + s + "?)"
	}
	if len(known) == 0 {
		return msg + " (this kind has no settings)"
	}
	sorted := slices.Clone(known)
	slices.Sort(sorted)
	return msg + " (known fields: " + strings.Join(sorted, ", ") + ")"
}

// mapping decodes a map of named blocks, replacing the target map.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.MappingNode {
		d.add(d.line(field, n), field, "expected a mapping of names to settings, not "+describeNode(n))
		return
	}
	t := v.Type()
	m := reflect.MakeMap(t)
	for _, e := range d.entries(n, field) {
		f := join(field, e.name)
		d.pos[f] = position{line: e.key.Line}
		ev := reflect.New(t.Elem()).Elem()
		if fam, ok := d.families[field]; ok && t.Elem() == blockType {
			ev.Set(reflect.ValueOf(d.kindedBlock(e, f, fam)))
		} else {
			d.value(e.val, ev, f)
		}
		m.SetMapIndex(reflect.ValueOf(e.name).Convert(t.Key()), ev)
	}
	v.Set(m)
}

// kinded splits a provider or chat block into its kind and other entries.
// The kind defaults to the block's name when that names a known kind. ok is
// false when the block was rejected (and reported).
func (d *decoder) kinded(e entry, field string, known func(string) bool, what string) (kind string, rest []entry, ok bool) {
	n := d.resolve(e.val)
	if !isNull(n) {
		if n.Kind != yaml.MappingNode {
			d.add(e.key.Line, field, "expected a mapping of settings, not "+describeNode(n))
			return "", nil, false
		}
		for _, ke := range d.entries(n, field) {
			if ke.name != "kind" {
				rest = append(rest, ke)
				continue
			}
			kf := field + ".kind"
			kn := d.resolve(ke.val)
			if isNull(kn) {
				continue
			}
			d.pos[kf] = position{line: ke.key.Line}
			s, good := d.text(kn, kf, "a "+what+" kind")
			if !good {
				return "", nil, false
			}
			kind = strings.TrimSpace(s)
		}
	}
	if kind == "" && known(e.name) {
		kind = e.name
	}
	return kind, rest, true
}

// kindedBlock decodes a provider or chat block: the kind first, then the
// other settings into a new settings struct of that kind. A block that
// cannot be decoded is reported, and skipped by validation.
func (d *decoder) kindedBlock(e entry, field string, fam family) Block {
	b := Block{Name: e.name, Line: e.key.Line}
	known := func(kind string) bool { _, ok := fam.find(kind); return ok }
	kind, rest, ok := d.kinded(e, field, known, fam.what)
	if !ok {
		d.skip[field] = true
		return b
	}
	b.Kind = kind
	if fam.what == "chat platform" {
		rest = d.roomStrategy(rest, field, &b)
	}
	kf := field + ".kind"
	k, ok := fam.find(kind)
	switch {
	case kind == "":
		d.add(d.line(kf, e.key), kf, "required (supported "+fam.what+" kinds: "+fam.names()+")")
	case !ok:
		d.add(d.line(kf, e.key), kf, d.show(kf, kind)+" is not a supported "+fam.what+" kind (supported: "+fam.names()+")")
	default:
		settings := newSettings(k)
		if settings == nil {
			d.add(d.line(kf, e.key), kf, fmt.Sprintf("internal error: %s kind %q: NewSettings must return a pointer to a struct", fam.what, kind))
			break
		}
		d.fields(rest, reflect.ValueOf(settings).Elem(), field)
		b.Settings = settings
		return b
	}
	d.skip[field] = true
	return b
}

// RoomStrategies are the values of a chat block's room_strategy.
var RoomStrategies = []string{"per_call", "per_channel", "per_user"}

// roomStrategy takes a chat block's room_strategy out of its entries (it
// is common to every chat kind, like kind) into b.
func (d *decoder) roomStrategy(entries []entry, field string, b *Block) []entry {
	rest := entries[:0:0]
	for _, e := range entries {
		if e.name != "room_strategy" {
			rest = append(rest, e)
			continue
		}
		f := field + ".room_strategy"
		d.pos[f] = position{line: e.key.Line}
		n := d.resolve(e.val)
		if isNull(n) {
			continue
		}
		s, ok := d.text(n, f, "per_call, per_channel or per_user")
		if !ok {
			continue
		}
		s = strings.TrimSpace(s)
		if !slices.Contains(RoomStrategies, s) {
			d.add(d.line(f, n), f, d.show(f, s)+" is not a room strategy (per_call, per_channel or per_user)")
			continue
		}
		b.RoomStrategy = s
	}
	return rest
}

// newSettings calls k.NewSettings, returning nil unless it gives a non-nil
// pointer to a struct.
func newSettings(k Kind) any {
	if k.NewSettings == nil {
		return nil
	}
	s := k.NewSettings()
	if v := reflect.ValueOf(s); !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	return s
}

// suggest returns the known name nearest to name, or "" when none is close.
func suggest(name string, known []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", -1
	for _, k := range known {
		if norm(k) == norm(name) {
			return k
		}
		dist := levenshtein(strings.ToLower(name), k)
		if dist <= 2 && 2*dist < len(k) && (bestDist < 0 || dist < bestDist) {
			best, bestDist = k, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
