# Shared by run.sh and scripts/bench-cells.sh: start CENTER and two SETs on
# loopback with certificates from one CA, each with the same peer user, SET
# table (set-a 0-4999, set-b 5000-9999) and peers. Expects $switchyard
# (the binary) and $work (a scratch dir), and sets `address[CELL]`, `pids`
# and the `on CELL ARGS…` helper (the CLI against that cell as guest).
# The caller's EXIT trap stops "${pids[@]}".

say() { printf '\n--- %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
cells=(CENTER set-a set-b)
declare -A address

say "a CA and a certificate per broker (switchyard tls ca / tls cert)"
"$switchyard" tls ca --out "$work/ca"
for cell in "${cells[@]}"; do
    "$switchyard" tls cert "$cell" --ca "$work/ca" --host 127.0.0.1 --host localhost --out "$work/certs" >/dev/null
done

say "three brokers on loopback, each on free ports with its own data dir"
for cell in "${cells[@]}"; do
    mkdir -p "$work/$cell"
    "$switchyard" serve --data-dir "$work/$cell" --listen 127.0.0.1:0 --http-listen off \
        --set "tls.cert=$work/certs/$cell.pem" --set "tls.key=$work/certs/$cell.key" \
        >"$work/$cell/serve.out" 2>"$work/$cell/serve.log" &
    pids+=($!)
done
for cell in "${cells[@]}"; do
    for _ in $(seq 100); do
        [ -s "$work/$cell/serve.out" ] && break
        sleep 0.1
    done
    address[$cell]=$(awk '{print $4; exit}' "$work/$cell/serve.out")
    [ -n "${address[$cell]}" ] || fail "$cell did not start: $(cat "$work/$cell/serve.log")"
    echo "$cell listens on ${address[$cell]}"
done

# The CLI against one cell's broker, as guest, trusting the CA.
on() {
    local cell=$1
    shift
    "$switchyard" "$@" --server "switchyard://guest:guest@${address[$cell]}" --ca "$work/ca/ca.pem"
}

say "on every broker: a peer user per other cell (bound to it), the SET table and peers"
for cell in "${cells[@]}"; do
    for other in "${cells[@]}"; do
        [ "$other" = "$cell" ] && continue
        # The user cell $other's broker logs in as; it may forward for $other only.
        on "$cell" user add "peer-$other" --password peer-secret --tag "cell-peer:$other"
        on "$cell" user permit "peer-$other" --vhost / --configure 'federation\..*' --write '.*' --read '.*'
    done
    on "$cell" cells local "$cell"
    on "$cell" cells range set-a 0-4999
    on "$cell" cells range set-b 5000-9999
    for other in "${cells[@]}"; do
        [ "$other" = "$cell" ] && continue
        on "$cell" cells peer "$other" "switchyard://peer-$cell:peer-secret@${address[$other]}" \
            --peer-ca "$work/ca/ca.pem"
    done
done
