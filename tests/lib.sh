# lib.sh — what the shell tests share; source it after setting W.
#   say TEXT          print a line
#   bad TEXT          print FAIL: TEXT and mark the test failed ($fail)
#   json FILE EXPR    evaluate EXPR on the JSON object d of FILE
#   expect STATUS PATTERN CMD...   run CMD: its exit status must be STATUS and
#                     its output (stdout and stderr) must match PATTERN
fail=0
say() { printf '%s\n' "$*"; }
bad() { say "FAIL: $*"; fail=1; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
expect() {
    want=$1; pat=$2; shift 2
    out=$("$@" 2>&1); st=$?
    if [ "$st" != "$want" ] || ! printf '%s' "$out" | grep -q -- "$pat"; then
        bad "$* -> status $st (want $want, '$pat'), output:"; printf '%s\n' "$out" | tail -5
    fi
}
