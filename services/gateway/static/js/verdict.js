// The three verdicts of POST /diagnose: same_person (so close it could be the member), lookalike (resembles the
// member more than the gallery's members resemble each other) and no_match (resembles nobody).

// same_person and lookalike name a member the face resembles; no_match names only the closest, not close enough.
export const resembles = (face) => face.verdict !== "no_match" && face.matches.length > 0;
