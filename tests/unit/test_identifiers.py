from portal.returns import identifiers


def test_new_rmas_are_valid_and_short():
    rmas = {identifiers.new_rma() for _ in range(500)}
    assert len(rmas) == 500
    assert all(len(r) == 8 and r.startswith("R") and identifiers.is_valid_rma(r) for r in rmas)


def test_any_single_symbol_typo_is_caught():
    rma = identifiers.new_rma()
    for i in range(1, len(rma)):
        for ch in identifiers.ALPHABET:
            if ch != rma[i]:
                assert not identifiers.is_valid_rma(rma[:i] + ch + rma[i + 1:]), (rma, i, ch)


def test_nearly_all_adjacent_swaps_are_caught():
    # Luhn mod N misses only swaps of the symbol pair (0, N-1) style; the rest are caught.
    caught = total = 0
    for _ in range(200):
        rma = identifiers.new_rma()
        for i in range(1, len(rma) - 1):
            if rma[i] != rma[i + 1]:
                total += 1
                caught += not identifiers.is_valid_rma(rma[:i] + rma[i + 1] + rma[i] + rma[i + 2:])
    assert caught / total > 0.95


def test_normalise_accepts_what_people_type():
    rma = identifiers.new_rma()
    typed = f" {rma[:4].lower()}-{rma[4:]} "
    assert identifiers.normalise_rma(typed) == rma
    assert identifiers.is_valid_rma(typed)
    assert identifiers.normalise_rma("RO1I") == "R011"


def test_status_tokens_have_at_least_128_bits():
    token = identifiers.new_status_token()
    assert len(token) * 6 >= 128 and identifiers.tokens_equal(token, token)
    assert not identifiers.tokens_equal(token, identifiers.new_status_token())
