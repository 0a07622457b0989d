# Shared by the tests: load the library and compare values.
for lib in lib/*.sh; do
    . "./$lib"
done

expect() {
    if [ "$1" != "$2" ]; then
        echo "expected '$2', got '$1'" >&2
        exit 1
    fi
}
