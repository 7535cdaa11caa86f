#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# check_doc_refs.sh: every citation of the design notes in the sources and docs names a file in
# docs/ and a section that exists there.
#
# A citation is "docs/<name>.md" followed by section numbers ("4.1", "section 6", "2.2-2.4",
# "3.1/3.3", "1.7, 3.5-3.6, 4.1"), test families ("F9/F10"), numbered items of a section
# ("section 7, rules 17-23", "pitfalls 2-4 and 8 of section 7"). Sections are the "## N." and
# "### N.M" headings, families the "| F<n> |" table rows, items the "N. " list entries of a
# "## N." section. Also fails on a bare design-note name (one without docs/) in the sources.
# Usage: bash tools/check_doc_refs.sh   (exit status 1 and one line per problem on failure)
set -euo pipefail
cd "$(dirname "$0")/.."

paths=()
for p in include tests examples tools src benchmarks cmake docs README.md CHANGELOG.md \
  CMakeLists.txt; do
  [ -e "$p" ] && paths+=("$p")
done

status=0
checked=0
fail() {
  echo "check_doc_refs: $*" >&2
  status=1
}

# has_section DOC REF: REF is "N", "N.M" or "F<n>".
has_section() {
  local doc=$1 ref=$2
  case $ref in
    F*) grep -qE "^\| ${ref} \|" "$doc" ;;
    *) grep -qE "^#{2,3} ${ref//./\\.}(\.| )" "$doc" ;;
  esac
}

# has_item DOC SECTION N: list entry "N. " inside "## SECTION.".
has_item() {
  awk -v s="$2." -v n="$3" '
    /^## / { in_sec = ($2 == s) }
    in_sec && $0 ~ "^ *" n "\\. " { found = 1 }
    END { exit !found }' "$1"
}

# expand A-B (N.M ranges within one section, or integer ranges); other tokens unchanged.
expand() {
  local tok=$1 a b
  if [[ $tok =~ ^([0-9]+)\.([0-9]+)-([0-9]+)\.([0-9]+)$ ]] &&
    [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[3]}" ]; then
    for ((a = BASH_REMATCH[2]; a <= BASH_REMATCH[4]; a++)); do echo "${BASH_REMATCH[1]}.$a"; done
  elif [[ $tok =~ ^([0-9]+)-([0-9]+)$ ]]; then
    for ((a = BASH_REMATCH[1]; a <= BASH_REMATCH[2]; a++)); do echo "$a"; done
  elif [[ $tok == *-* ]]; then
    a=${tok%%-*} b=${tok#*-}
    echo "$a"
    echo "$b"
  else
    echo "$tok"
  fi
}

ref='F?[0-9]+(\.[0-9]+)?([-/]F?[0-9]+(\.[0-9]+)?)*'
items='(rules|pitfalls) [0-9]+(-[0-9]+)?( and [0-9]+)*( of section [0-9]+)?'
pattern="docs/[a-z_]+\.md( section)? ${ref}(, (${ref}|${items}))*"

while IFS= read -r hit; do
  loc=${hit%%:docs/*}
  cite=docs/${hit#*:docs/}
  doc=${cite%%.md*}.md
  rest=${cite#"$doc"}
  rest=${rest# }
  rest=${rest#section }
  [ -f "$doc" ] || continue  # reported below
  last=""
  IFS=',' read -ra parts <<<"$rest"
  for part in "${parts[@]}"; do
    part=${part# }
    if [[ $part =~ ^(rules|pitfalls)\ (.*)$ ]]; then
      list=${BASH_REMATCH[2]}
      sec=$last
      if [[ $list =~ ^(.*)\ of\ section\ ([0-9]+)$ ]]; then
        list=${BASH_REMATCH[1]}
        sec=${BASH_REMATCH[2]}
      fi
      for tok in ${list// and / }; do
        for n in $(expand "$tok"); do
          checked=$((checked + 1))
          has_item "$doc" "$sec" "$n" || fail "$loc: $doc section $sec has no item $n ($cite)"
        done
      done
      continue
    fi
    for tok in ${part//\// }; do
      for s in $(expand "$tok"); do
        checked=$((checked + 1))
        has_section "$doc" "$s" || fail "$loc: $doc has no section $s ($cite)"
        last=$s
      done
    done
  done
done < <(grep -rnoE "$pattern" "${paths[@]}" || true)

# Any docs/<name>.md mentioned must exist.
while IFS= read -r hit; do
  doc=docs/${hit#*:docs/}
  [ -f "$doc" ] || fail "${hit%%:docs/*}: $doc does not exist"
done < <(grep -rnoE 'docs/[a-z_]+\.md' "${paths[@]}" || true)

# Design-note names without docs/ (outside docs/, whose files link each other by bare name).
stale='(^|[^/a-z_])(DESIGN|design|algorithms|testing|style|users)\.md'
while IFS= read -r hit; do
  fail "${hit%%:*}:$(cut -d: -f2 <<<"$hit"): cites a note outside docs/"
done < <(grep -rnE "$stale" "${paths[@]}" --exclude-dir=docs --exclude=check_doc_refs.sh || true)

if [ "$status" -eq 0 ]; then
  echo "check_doc_refs: $checked cited sections and items found in docs/"
fi
exit "$status"
