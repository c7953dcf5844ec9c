//! The words the injection rules know, each with the classes it belongs to.
//!
//! Entries are written already normalized (lowercase, accents folded, the
//! Cyrillic look-alikes folded to Latin, as `words` does it), so a word of
//! the text is found by comparing bytes. The index is built at compile time:
//! a guard instance is often created for a single check, and a table sorted
//! at run time would cost more than the check.

/// Ignore, disregard, forget... in any inflection.
pub const VERB: u64 = 1 << 0;
/// Previous, prior, above...: what says the instructions came before.
pub const QUAL: u64 = 1 << 1;
/// Above, told, said...: enough on their own at the end of a clause
/// ("ignore the above", "forget everything you were told").
pub const QEND: u64 = 1 << 2;
/// Instructions, rules, prompt...: what an override targets.
pub const NOUN: u64 = 1 << 3;
/// Everything, all...: a target only together with a `QEND` word.
pub const WEAK: u64 = 1 << 4;
/// Your...
pub const POSS2: u64 = 1 << 5;
/// Its, their...: someone else's instructions are being talked about.
pub const POSS3: u64 = 1 << 6;
/// Not, never...
pub const NEG: u64 = 1 << 7;
/// To, can, model...: the verb after it is described, not ordered.
pub const NONIMP: u64 = 1 << 8;
/// You...
pub const PRON2: u64 = 1 << 9;
/// DAN, unrestricted, jailbroken...: what a hijacked role claims to be.
pub const TARGET: u64 = 1 << 10;
/// Without, no, sans...
pub const WITHOUT: u64 = 1 << 11;
/// Restrictions, filters, rules...: what a hijacked role claims to be free of.
pub const LIMIT: u64 = 1 << 12;
/// Reveal, print, show...
pub const DISCLOSE: u64 = 1 << 13;
/// Prompt.
pub const PROMPT: u64 = 1 << 14;
/// System.
pub const SYSTEM: u64 = 1 << 15;
/// Hidden, secret, initial...
pub const HIDDEN: u64 = 1 << 16;
/// Mode.
pub const MODE: u64 = 1 << 17;
/// Developer, god, jailbreak...: the modes a hijack switches on.
pub const DEV: u64 = 1 << 18;
/// Enabled, activated, on...
pub const ON: u64 = 1 << 19;
/// New.
pub const NEW: u64 = 1 << 20;
/// Please, now, then...: what may come before an order at a clause start.
pub const LEAD: u64 = 1 << 21;
/// Must, obey, priority...: a `System:` line claiming authority.
pub const AUTH: u64 = 1 << 22;
/// The first word of a role-switch phrase (see `injection::SWITCHES`).
pub const SWITCH: u64 = 1 << 23;
/// If, when...: a conditional describes a case, it claims nothing.
pub const IF: u64 = 1 << 24;
/// Text, words: what "repeat the text above" asks for.
pub const TEXT: u64 = 1 << 25;
/// And, then...: what may follow "the above" in "ignore the above and...".
pub const AND: u64 = 1 << 26;
/// Can, could, would...: a modal asking a question ("could you print...").
pub const ASK: u64 = 1 << 27;
/// Instructions, rules, prompt: a `System:` line naming them claims authority.
pub const INSTR: u64 = 1 << 28;
/// The, of, what...: may stand between a verb and "above" in "ignore the above".
pub const FILLER: u64 = 1 << 29;
/// Follow, obey, take into account...: an override when negated ("do not
/// follow the previous instructions", "ne tiens pas compte des...").
pub const HEED: u64 = 1 << 30;
/// AI, assistant, answer...: what makes a "developer mode" one of a chatbot.
pub const AI: u64 = 1 << 31;
/// Any, more, plus...: "free of" after a negation ("not bound by any rules",
/// "tu n'as plus de règles").
pub const ANY: u64 = 1 << 32;
/// Are, have, bist, eres...: what makes "you ..." a claim about the reader.
pub const COPULA: u64 = 1 << 33;
/// Stop, quit...: "stop following the system prompt" negates like "not".
pub const STOP: u64 = 1 << 34;
/// What...: a question asks about "your" instructions, or about anything.
pub const QUESTION: u64 = 1 << 35;
/// Void, revoked, "no longer apply"...: earlier instructions declared void.
pub const VOID: u64 = 1 << 36;
/// The entry matches any word it starts (a stem), not only itself.
const STEM: u64 = 1 << 63;

const N: u64 = NOUN | INSTR;

/// (word or stem, classes). Stems are at least three bytes long.
pub const ENTRIES: &[(&str, u64)] = &[
    // Override verbs.
    ("ignor", VERB | AUTH | STEM),
    ("aside", VERB),
    // Verbs that override when negated.
    ("follow", HEED | STEM),
    ("obey", HEED | AUTH | STEM),
    ("respect", HEED | STEM),
    ("compte", HEED),
    ("beacht", HEED | STEM),
    ("befolg", HEED | STEM),
    ("sigas", HEED),
    ("siga", HEED),
    ("seguir", HEED),
    ("segui", HEED | STEM),
    ("volg", HEED | STEM),
    ("attention", HEED),
    ("suis", HEED),
    ("suivez", HEED),
    ("suivre", HEED),
    // What negates a "follow" verb besides "not".
    ("stop", STOP | STEM),
    ("quit", STOP),
    ("cease", STOP),
    ("arrete", STOP | STEM),
    ("deja", STOP),
    ("smetti", STOP | STEM),
    ("pare", STOP),
    ("hor", STOP),
    ("sans", STOP | WITHOUT),
    ("without", STOP | WITHOUT),
    ("ohne", STOP | WITHOUT),
    ("sin", STOP | WITHOUT),
    ("senza", STOP | WITHOUT),
    ("sem", STOP | WITHOUT),
    ("disregard", VERB | AUTH | STEM),
    ("forget", VERB | STEM),
    ("forgot", VERB | STEM),
    ("override", VERB | AUTH | STEM),
    ("bypass", VERB | STEM),
    ("discard", VERB | STEM),
    ("skip", VERB),
    ("omit", VERB | STEM),
    ("abandon", VERB | STEM),
    ("oubli", VERB | STEM),
    ("neglig", VERB | STEM),
    ("annul", VERB | STEM),
    ("vergiss", VERB | STEM),
    ("vergess", VERB | STEM),
    ("missacht", VERB | STEM),
    ("olvid", VERB | STEM),
    ("descart", VERB | STEM),
    ("omiso", VERB),
    ("dimentic", VERB | STEM),
    ("tralasci", VERB | STEM),
    ("trascur", VERB | STEM),
    ("esquec", VERB | STEM),
    ("desconsider", VERB | STEM),
    ("negeer", VERB | STEM),
    ("vergeet", VERB | STEM),
    ("zignoruj", VERB | STEM),
    ("zapomnij", VERB | STEM),
    ("игнop", VERB | STEM),
    ("зaбyд", VERB | STEM),
    // Qualifiers: the instructions came before.
    ("previous", QUAL | STEM),
    ("prior", QUAL),
    ("above", QUAL | QEND),
    ("earlier", QUAL),
    ("preceding", QUAL),
    ("foregoing", QUAL),
    ("former", QUAL),
    ("original", QUAL | HIDDEN | STEM),
    ("originai", QUAL | HIDDEN | STEM),
    ("initial", QUAL | HIDDEN | STEM),
    ("before", QUAL | QEND),
    ("told", QUAL | QEND),
    ("said", QEND),
    ("given", QUAL),
    ("gave", QUAL),
    ("deram", QUAL),
    ("dieron", QUAL),
    ("dado", QUAL),
    ("dato", QUAL),
    ("donnees", QUAL),
    ("gegeben", QUAL),
    ("received", QUAL),
    ("precedent", QUAL | STEM),
    ("precedemment", QUAL | QEND),
    ("precede", QUAL | QEND),
    ("anterieur", QUAL | STEM),
    ("anterior", QUAL | QEND | STEM),
    ("ancien", QUAL | STEM),
    ("dessus", QUAL | QEND),
    ("haut", QUAL),
    ("avant", QUAL | QEND),
    ("auparavant", QUAL),
    ("vorherig", QUAL | STEM),
    ("vorig", QUAL | STEM),
    ("bisherig", QUAL | STEM),
    ("obig", QUAL | QEND | STEM),
    ("oben", QUAL | QEND),
    ("fruher", QUAL | STEM),
    ("vorangegangen", QUAL | STEM),
    ("vorstehend", QUAL | STEM),
    ("vorher", QUAL | QEND),
    ("zuvor", QUAL | QEND),
    ("ursprunglich", QUAL | HIDDEN | STEM),
    ("previa", QUAL | STEM),
    ("previo", QUAL | STEM),
    ("arriba", QUAL | QEND),
    ("antes", QUAL | QEND),
    ("sopra", QUAL | QEND),
    ("prima", QUAL | QEND),
    ("detto", QEND),
    ("acima", QUAL | QEND),
    ("dito", QEND),
    ("eerder", QUAL | STEM),
    ("voorgaand", QUAL | STEM),
    ("bovenstaand", QUAL | QEND | STEM),
    ("poprzedn", QUAL | STEM),
    ("wczesniejsz", QUAL | STEM),
    ("powyzsz", QUAL | QEND | STEM),
    ("пpeдыдyщ", QUAL | STEM),
    // What an override targets.
    ("instruc", N | STEM),
    ("istruzion", N | STEM),
    ("anweisung", N | STEM),
    ("instruktion", N | STEM),
    ("instructie", N | STEM),
    ("instrukcj", N | STEM),
    ("инcтpyкци", N | STEM),
    ("direction", NOUN | STEM),
    ("directive", N | STEM),
    ("directri", N | LIMIT | STEM),
    ("diretri", N | LIMIT | STEM),
    ("direttiv", N | STEM),
    ("richtlini", N | LIMIT | STEM),
    ("guideline", N | LIMIT | STEM),
    ("guidance", NOUN),
    ("rule", N | LIMIT | STEM),
    ("regle", N | LIMIT | STEM),
    ("regel", N | LIMIT | STEM),
    ("regla", N | LIMIT | STEM),
    ("regol", N | LIMIT | STEM),
    ("regra", N | LIMIT | STEM),
    ("normas", NOUN | LIMIT),
    ("prompt", N | PROMPT | STEM),
    ("systemprompt", N | PROMPT | SYSTEM | STEM),
    ("preprompt", N | PROMPT | STEM),
    ("metaprompt", N | PROMPT | STEM),
    ("systemanweisung", N | SYSTEM | STEM),
    ("command", NOUN | STEM),
    ("befehl", NOUN | STEM),
    ("comando", NOUN | STEM),
    ("consigne", N | STEM),
    ("indication", NOUN | STEM),
    ("indicac", NOUN | STEM),
    ("indicazion", NOUN | STEM),
    ("orientac", NOUN | STEM),
    ("constraint", NOUN | LIMIT | STEM),
    ("programming", NOUN),
    ("training", NOUN),
    ("context", NOUN | STEM),
    ("restric", NOUN | LIMIT | STEM),
    ("restriz", NOUN | LIMIT | STEM),
    ("vorgabe", NOUN | STEM),
    ("ordre", NOUN | STEM),
    ("ordini", NOUN),
    ("ordens", NOUN),
    ("ordenes", NOUN),
    ("polecen", N | STEM),
    ("zasad", N | LIMIT | STEM),
    ("пpaвил", N | LIMIT | STEM),
    // Declared void.
    ("void", VOID),
    ("null", VOID),
    ("revoked", VOID),
    ("cancelled", VOID),
    ("canceled", VOID),
    ("apply", VOID),
    ("nul", VOID | STEM),
    ("annule", VOID | STEM),
    ("ungultig", VOID | STEM),
    ("aufgehoben", VOID),
    ("nula", VOID | STEM),
    ("anulad", VOID | STEM),
    ("annullat", VOID | STEM),
    ("ones", NOUN),
    // Weak targets.
    ("everything", WEAK),
    ("anything", WEAK),
    ("all", WEAK),
    ("tout", WEAK),
    ("tutto", WEAK),
    ("tudo", WEAK),
    ("todo", WEAK),
    ("alles", WEAK),
    // Words that may stand between a verb and "above".
    ("the", FILLER),
    ("an", FILLER),
    ("of", FILLER),
    ("is", FILLER),
    ("was", FILLER),
    ("written", FILLER),
    ("le", FILLER),
    ("la", FILLER),
    ("les", FILLER),
    ("l", FILLER),
    ("ce", FILLER),
    ("qui", FILLER),
    ("est", FILLER),
    ("ecrit", FILLER),
    ("ci", FILLER),
    ("des", FILLER),
    ("der", FILLER),
    ("die", FILLER),
    ("das", FILLER),
    ("den", FILLER),
    ("dem", FILLER),
    ("el", FILLER),
    ("lo", FILLER),
    ("los", FILLER),
    ("las", FILLER),
    ("gli", FILLER),
    ("o", FILLER),
    ("os", FILLER),
    ("do", FILLER),
    ("da", FILLER | SWITCH),
    // Second-person possessives (and pronouns that are both).
    ("your", POSS2),
    ("yours", POSS2),
    ("ur", POSS2),
    ("tes", POSS2),
    ("ton", POSS2),
    ("ta", POSS2),
    ("vos", POSS2),
    ("votre", POSS2),
    ("tus", POSS2),
    ("tu", POSS2 | PRON2 | SWITCH),
    ("sus", POSS2),
    ("deine", POSS2),
    ("deinen", POSS2),
    ("deiner", POSS2),
    ("deines", POSS2),
    ("dein", POSS2),
    ("tue", POSS2),
    ("tuoi", POSS2),
    ("tua", POSS2),
    ("tuo", POSS2),
    ("teus", POSS2),
    ("tuas", POSS2),
    ("teu", POSS2),
    ("suas", POSS2),
    ("seus", POSS2),
    ("sua", POSS2),
    ("seu", POSS2),
    ("jouw", POSS2),
    ("twoje", POSS2),
    ("twoich", POSS2),
    // Third-person possessives.
    ("its", POSS3),
    ("their", POSS3),
    ("his", POSS3),
    ("her", POSS3),
    ("ses", POSS3),
    ("leurs", POSS3),
    ("leur", POSS3),
    ("seine", POSS3),
    ("seinen", POSS3),
    ("seiner", POSS3),
    ("loro", POSS3),
    ("suoi", POSS3),
    // Negations.
    ("not", NEG),
    ("never", NEG),
    ("don", NEG),
    ("dont", NEG),
    ("doesn", NEG),
    ("didn", NEG),
    ("won", NEG),
    ("nicht", NEG),
    ("nie", NEG),
    ("niemals", NEG),
    ("jamais", NEG),
    ("nunca", NEG),
    ("mai", NEG),
    ("n", NEG | COPULA),
    ("ne", NEG),
    ("pas", NEG),
    ("no", NEG | WITHOUT),
    ("non", NEG | WITHOUT),
    ("nao", NEG | WITHOUT),
    ("niet", NEG),
    // Words after which a verb is described rather than ordered.
    ("to", NONIMP),
    ("can", NONIMP | ASK),
    ("could", NONIMP | ASK),
    ("may", NONIMP),
    ("might", NONIMP),
    ("will", NONIMP | ASK | COPULA),
    ("would", NONIMP | ASK),
    ("should", NONIMP),
    ("shall", NONIMP),
    ("cannot", NONIMP),
    ("shouldn", NONIMP),
    ("wouldn", NONIMP),
    ("couldn", NONIMP),
    ("model", NONIMP | STEM),
    ("llm", NONIMP | AI | STEM),
    ("chatbot", NONIMP | AI | STEM),
    ("it", NONIMP),
    ("they", NONIMP),
    ("he", NONIMP),
    ("she", NONIMP),
    ("we", NONIMP),
    ("which", NONIMP),
    ("who", NONIMP),
    ("that", NONIMP),
    ("attacker", NONIMP | STEM),
    ("tries", NONIMP),
    ("try", NONIMP),
    ("trying", NONIMP),
    ("attempt", NONIMP | STEM),
    ("zu", NONIMP),
    ("d", NONIMP | SWITCH),
    ("di", NONIMP),
    ("per", NONIMP),
    ("pour", NONIMP),
    ("para", NONIMP),
    ("de", NONIMP | SWITCH | FILLER),
    ("a", NONIMP | SWITCH | FILLER),
    ("que", NONIMP | FILLER),
    ("um", NONIMP),
    // Words that may open an order.
    ("please", LEAD),
    ("pls", LEAD),
    ("plz", LEAD),
    ("now", LEAD | SWITCH),
    ("then", LEAD | AND),
    ("and", LEAD | AND),
    ("just", LEAD),
    ("also", LEAD),
    ("so", LEAD),
    ("first", LEAD),
    ("kindly", LEAD),
    ("immediately", LEAD),
    ("simply", LEAD),
    ("instead", LEAD),
    ("ok", LEAD),
    ("okay", LEAD),
    ("hey", LEAD),
    ("hi", LEAD),
    ("hello", LEAD),
    ("but", LEAD),
    ("bitte", LEAD),
    ("jetzt", LEAD),
    ("nun", LEAD),
    ("dann", LEAD | AND),
    ("und", LEAD | AND),
    ("aber", LEAD),
    ("maintenant", LEAD),
    ("alors", LEAD),
    ("et", LEAD | AND),
    ("puis", LEAD | AND),
    ("mais", LEAD),
    ("svp", LEAD),
    ("stp", LEAD),
    ("il", LEAD),
    ("te", LEAD),
    ("plait", LEAD),
    ("ahora", LEAD | SWITCH),
    ("luego", LEAD | AND),
    ("pero", LEAD),
    ("y", LEAD | AND),
    ("ora", LEAD | SWITCH),
    ("adesso", LEAD | SWITCH),
    ("poi", LEAD | AND),
    ("ma", LEAD),
    ("agora", LEAD | SWITCH),
    ("depois", LEAD | AND),
    ("por", LEAD),
    ("favor", LEAD),
    ("favore", LEAD),
    ("en", AND),
    ("i", AND),
    // Second person.
    ("you", PRON2 | SWITCH),
    ("youre", PRON2 | SWITCH),
    ("yourself", PRON2),
    ("u", PRON2),
    ("toi", PRON2),
    ("vous", PRON2 | SWITCH),
    ("du", PRON2 | SWITCH),
    ("dich", PRON2),
    ("dir", PRON2),
    ("usted", PRON2),
    ("voce", PRON2),
    ("vc", PRON2),
    ("jij", PRON2),
    ("ty", PRON2),
    ("eres", PRON2 | COPULA),
    ("tienes", PRON2 | COPULA),
    ("hai", PRON2 | COPULA),
    ("sei", PRON2 | COPULA),
    ("bist", PRON2 | COPULA),
    ("hast", PRON2 | COPULA),
    ("tens", PRON2 | COPULA),
    // What makes "you ..." a claim.
    ("are", COPULA),
    ("re", COPULA),
    ("have", COPULA),
    ("ve", COPULA),
    ("were", COPULA),
    ("be", COPULA),
    ("been", COPULA),
    ("es", COPULA),
    ("etes", COPULA),
    ("avez", COPULA),
    ("as", COPULA | FILLER),
    ("avais", COPULA),
    ("serais", COPULA),
    ("estas", COPULA),
    ("e", COPULA | LEAD | AND),
    ("tem", COPULA),
    ("bent", COPULA),
    ("hebt", COPULA),
    ("jestes", COPULA | SWITCH),
    ("masz", COPULA),
    // What a hijacked role claims to be.
    ("dan", TARGET | DEV),
    ("jailbr", TARGET | DEV | STEM),
    ("unrestrict", TARGET | DEV | STEM),
    ("unfilter", TARGET | DEV | STEM),
    ("uncensor", TARGET | DEV | STEM),
    ("unbound", TARGET),
    ("unchained", TARGET),
    ("unmoderated", TARGET),
    ("unaligned", TARGET),
    ("amoral", TARGET),
    ("uneingeschrankt", TARGET | STEM),
    ("unzensiert", TARGET | STEM),
    ("ungefiltert", TARGET | STEM),
    ("illimit", TARGET | STEM),
    ("irrestrict", TARGET | STEM),
    ("godmode", TARGET | DEV | MODE),
    // Free of what.
    ("free", WITHOUT | STEM),
    ("libre", WITHOUT | STEM),
    ("libero", WITHOUT),
    ("libera", WITHOUT),
    ("liberi", WITHOUT),
    ("livre", WITHOUT | STEM),
    ("frei", WITHOUT),
    ("vrij", WITHOUT),
    ("wolny", WITHOUT),
    ("aucune", WITHOUT),
    ("aucun", WITHOUT),
    ("keine", WITHOUT),
    ("kein", WITHOUT),
    ("keinerlei", WITHOUT),
    ("ninguna", WITHOUT),
    ("ningun", WITHOUT),
    ("nessuna", WITHOUT),
    ("nessun", WITHOUT),
    ("nenhuma", WITHOUT),
    ("nenhum", WITHOUT),
    ("zonder", WITHOUT),
    ("geen", WITHOUT),
    ("bez", WITHOUT),
    ("any", ANY),
    ("more", ANY),
    ("longer", ANY),
    ("plus", ANY),
    ("mehr", ANY),
    ("bound", ANY),
    ("restricted", ANY),
    ("limited", ANY),
    ("constrained", ANY),
    ("subject", ANY),
    ("gebunden", ANY),
    ("vincolat", ANY | STEM),
    ("alguna", ANY),
    ("alcuna", ANY),
    ("filter", LIMIT | STEM),
    ("filtr", LIMIT | STEM),
    ("censor", LIMIT | STEM),
    ("censur", LIMIT | STEM),
    ("zensur", LIMIT | STEM),
    ("ethic", LIMIT | STEM),
    ("ethique", LIMIT),
    ("ethik", LIMIT | STEM),
    ("etic", LIMIT | STEM),
    ("moral", LIMIT | STEM),
    ("boundar", LIMIT | STEM),
    ("grenz", LIMIT | STEM),
    ("einschrankung", LIMIT | STEM),
    ("beschrankung", LIMIT | STEM),
    ("guardrail", LIMIT | STEM),
    ("safeguard", LIMIT | STEM),
    ("safety", LIMIT),
    ("policy", LIMIT),
    ("policies", LIMIT),
    ("beperking", LIMIT | STEM),
    ("ograniczen", LIMIT | STEM),
    // Disclosure verbs.
    ("reveal", DISCLOSE | STEM),
    ("revel", DISCLOSE | STEM),
    ("print", DISCLOSE | STEM),
    ("show", DISCLOSE | STEM),
    ("output", DISCLOSE | STEM),
    ("repeat", DISCLOSE | STEM),
    ("display", DISCLOSE | STEM),
    ("leak", DISCLOSE | STEM),
    ("tell", DISCLOSE),
    ("dump", DISCLOSE | STEM),
    ("disclos", DISCLOSE | STEM),
    ("expose", DISCLOSE),
    ("recit", DISCLOSE | STEM),
    ("spill", DISCLOSE),
    ("what", DISCLOSE | FILLER | QUESTION),
    ("montr", DISCLOSE | STEM),
    ("affich", DISCLOSE | STEM),
    ("donne", DISCLOSE | STEM),
    ("dis", DISCLOSE),
    ("dites", DISCLOSE),
    ("repet", DISCLOSE | STEM),
    ("imprim", DISCLOSE | STEM),
    ("zeig", DISCLOSE | STEM),
    ("gib", DISCLOSE),
    ("verrat", DISCLOSE | STEM),
    ("nenne", DISCLOSE),
    ("wiederhol", DISCLOSE | STEM),
    ("muestr", DISCLOSE | STEM),
    ("dime", DISCLOSE),
    ("repit", DISCLOSE | STEM),
    ("ensena", DISCLOSE | STEM),
    ("rivel", DISCLOSE | STEM),
    ("mostr", DISCLOSE | STEM),
    ("dimmi", DISCLOSE),
    ("stampa", DISCLOSE),
    ("ripet", DISCLOSE | STEM),
    ("svela", DISCLOSE | STEM),
    ("diga", DISCLOSE),
    ("exiba", DISCLOSE),
    ("toon", DISCLOSE),
    ("pokaz", DISCLOSE | STEM),
    ("ujawnij", DISCLOSE),
    ("wypisz", DISCLOSE),
    // System, hidden, text.
    ("system", SYSTEM),
    ("systeme", SYSTEM),
    ("sistema", SYSTEM),
    ("systeem", SYSTEM),
    ("systemu", SYSTEM),
    ("systemow", SYSTEM | STEM),
    ("hidden", HIDDEN),
    ("secret", HIDDEN | STEM),
    ("segret", HIDDEN | STEM),
    ("internal", HIDDEN),
    ("confidential", HIDDEN),
    ("cache", HIDDEN | STEM),
    ("versteckt", HIDDEN | STEM),
    ("geheim", HIDDEN | STEM),
    ("ocult", HIDDEN | STEM),
    ("nascost", HIDDEN | STEM),
    ("inizial", HIDDEN | QUAL | STEM),
    ("inicial", HIDDEN | QUAL | STEM),
    ("text", TEXT),
    ("words", TEXT),
    ("texte", TEXT),
    // A chatbot's context.
    ("ai", AI),
    ("ia", AI),
    ("ki", AI),
    ("assistant", AI | STEM),
    ("asistente", AI),
    ("chatgpt", AI),
    ("gpt", AI | STEM),
    ("claude", AI),
    ("gemini", AI),
    ("bot", AI),
    ("repl", AI | STEM),
    ("response", AI | STEM),
    ("repond", AI | STEM),
    ("reponse", AI | STEM),
    ("rispond", AI | STEM),
    ("rispost", AI | STEM),
    ("respuest", AI | STEM),
    ("respost", AI | STEM),
    ("antwort", AI | STEM),
    ("generate", AI | STEM),
    ("content", AI | STEM),
    // Modes.
    ("mode", MODE),
    ("modes", MODE),
    ("modo", MODE),
    ("modus", MODE | STEM),
    ("modalita", MODE),
    ("modalidade", MODE),
    ("developer", DEV),
    ("developermode", DEV | MODE),
    ("devmode", DEV | MODE),
    ("dev", DEV),
    ("god", DEV),
    ("sudo", DEV),
    ("developpeur", DEV),
    ("desarrollador", DEV),
    ("entwickler", DEV | STEM),
    ("entwicklermodus", MODE),
    ("sviluppatore", DEV),
    ("desenvolvedor", DEV),
    ("enabl", ON | STEM),
    ("activ", ON | STEM),
    ("aktiv", ON | STEM),
    ("attiv", ON | STEM),
    ("ativ", ON | STEM),
    ("habilit", ON | STEM),
    ("eingeschaltet", ON),
    ("engag", ON | STEM),
    ("unlock", ON | STEM),
    ("on", ON),
    ("switch", ON),
    ("enter", ON),
    ("entra", ON),
    ("passe", ON),
    ("wechsle", ON),
    // New.
    ("new", NEW),
    ("nouvel", NEW | STEM),
    ("nouveau", NEW),
    ("nouveaux", NEW),
    ("neue", NEW),
    ("neuen", NEW),
    ("neues", NEW),
    ("neuer", NEW),
    ("nueva", NEW | STEM),
    ("nuevo", NEW | STEM),
    ("nuove", NEW),
    ("nuovi", NEW),
    ("nuova", NEW),
    ("nuovo", NEW),
    ("novas", NEW),
    ("novos", NEW),
    ("nova", NEW),
    ("novo", NEW),
    ("nieuwe", NEW),
    ("nowe", NEW),
    ("nowa", NEW),
    // Authority.
    ("must", AUTH),
    ("comply", AUTH),
    ("priority", AUTH),
    ("prioritaire", AUTH),
    ("priorite", AUTH),
    ("vorrang", AUTH | STEM),
    ("prioridad", AUTH | STEM),
    ("priorita", AUTH),
    ("admin", AUTH | STEM),
    ("authoriz", AUTH | STEM),
    ("authoris", AUTH | STEM),
    ("autoris", AUTH | STEM),
    ("autoriz", AUTH | STEM),
    ("mandatory", AUTH),
    ("obligatoire", AUTH),
    ("verpflichtend", AUTH),
    ("obligatori", AUTH | STEM),
    ("obbligatori", AUTH | STEM),
    ("obrigatori", AUTH | STEM),
    ("doit", AUTH),
    ("devez", AUTH),
    ("dois", AUTH),
    ("muss", AUTH),
    ("musst", AUTH),
    ("mussen", AUTH),
    ("debes", AUTH),
    ("debe", AUTH),
    ("devi", AUTH),
    ("deve", AUTH),
    ("devono", AUTH),
    ("moet", AUTH),
    ("musisz", AUTH),
    ("obeir", AUTH),
    ("obeissez", AUTH),
    ("gehorche", AUTH | STEM),
    ("obedec", AUTH | STEM),
    ("obbedisci", AUTH),
    // Heads of role-switch phrases not listed above.
    ("act", SWITCH),
    ("stay", SWITCH),
    ("respond", AI | SWITCH | STEM),
    ("answer", AI | SWITCH | STEM),
    ("reply", AI | SWITCH),
    ("pretend", SWITCH),
    ("roleplay", SWITCH),
    ("role", SWITCH),
    ("behave", SWITCH),
    ("simulate", SWITCH),
    ("from", SWITCH),
    ("imagine", SWITCH),
    ("henceforth", SWITCH),
    ("agis", SWITCH),
    ("agissez", SWITCH),
    ("fais", SWITCH),
    ("faites", SWITCH),
    ("desormais", SWITCH),
    ("joue", SWITCH),
    ("ab", SWITCH),
    ("von", SWITCH),
    ("verhalte", SWITCH),
    ("handle", SWITCH),
    ("actua", SWITCH),
    ("finge", SWITCH),
    ("desde", SWITCH),
    ("comportate", SWITCH),
    ("agisci", SWITCH),
    ("comportati", SWITCH),
    ("fingi", SWITCH),
    ("aja", SWITCH),
    ("finja", SWITCH),
    ("daqui", SWITCH),
    ("comporte", SWITCH),
    ("je", SWITCH),
    ("vanaf", SWITCH),
    ("gedraag", SWITCH),
    ("doe", SWITCH),
    ("od", SWITCH),
    ("zachowuj", SWITCH),
    ("udawaj", SWITCH),
    // Conditionals.
    ("if", IF),
    ("when", IF),
    ("whenever", IF),
    ("whether", IF),
    ("unless", IF),
    ("si", IF),
    ("wenn", IF),
    ("falls", IF),
    ("ob", IF),
    ("se", IF),
    ("als", IF),
    ("cuando", IF),
    ("quando", IF),
    ("wanneer", IF),
    ("jesli", IF),
];

const BUCKETS: usize = 4096;
const COUNT: usize = ENTRIES.len();
/// Stems are at least this long, so a word's first `KEY` bytes are those of
/// every entry it can match: they pick the bucket.
const KEY: usize = 3;

/// One entry as the lookup reads it, all in one place: its first eight
/// bytes as a number (most comparisons are one integer operation), its
/// length and classes, and where the rest of it is.
#[derive(Clone, Copy)]
struct Slot {
    head: u64,
    class: u64,
    len: usize,
    entry: usize,
}

/// Entries grouped by the bucket of their first `KEY` bytes. With four
/// times as many buckets as entries, most words of a text fall into an
/// empty bucket and are rejected at once.
struct Index {
    start: [u16; BUCKETS + 1],
    slots: [Slot; COUNT],
}

/// The bucket of a word or entry: a hash of its first `KEY` bytes (fewer
/// for a shorter word, which only an entry equal to it can match).
const fn bucket(b: &[u8]) -> usize {
    let mut h: u32 = 0;
    let mut i = 0;
    while i < KEY {
        let c = if i < b.len() { b[i] } else { 0 };
        h = (h ^ c as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    (h ^ (h >> 15)) as usize & (BUCKETS - 1)
}

/// The first eight bytes of `b`, little-endian, zero-padded.
const fn head(b: &[u8]) -> u64 {
    let mut h = 0u64;
    let mut i = 0;
    while i < b.len() && i < 8 {
        h |= (b[i] as u64) << (8 * i);
        i += 1;
    }
    h
}

/// A counting sort by bucket, run by the compiler.
const fn build() -> Index {
    let mut start = [0u16; BUCKETS + 1];
    let mut i = 0;
    while i < COUNT {
        start[bucket(ENTRIES[i].0.as_bytes()) + 1] += 1;
        i += 1;
    }
    let mut k = 0;
    while k < BUCKETS {
        start[k + 1] += start[k];
        k += 1;
    }
    let mut next = start;
    let mut slots = [Slot {
        head: 0,
        class: 0,
        len: 0,
        entry: 0,
    }; COUNT];
    let mut i = 0;
    while i < COUNT {
        let (word, class) = ENTRIES[i];
        let b = bucket(word.as_bytes());
        slots[next[b] as usize] = Slot {
            head: head(word.as_bytes()),
            class,
            len: word.len(),
            entry: i,
        };
        next[b] += 1;
        i += 1;
    }
    Index { start, slots }
}

static INDEX: Index = build();

/// The classes of a normalized word.
pub fn classify(word: &[u8]) -> u64 {
    let b = bucket(word);
    let (from, to) = (INDEX.start[b] as usize, INDEX.start[b + 1] as usize);
    if from == to {
        return 0;
    }
    let mut padded = [0u8; 8];
    let n = word.len().min(8);
    padded[..n].copy_from_slice(&word[..n]);
    let word_head = u64::from_le_bytes(padded);
    let mut classes = 0;
    for slot in &INDEX.slots[from..to] {
        let n = slot.len;
        if word.len() < n || (slot.class & STEM == 0 && word.len() != n) {
            continue;
        }
        let mask = if n >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        if (word_head ^ slot.head) & mask == 0
            && (n <= 8 || word[8..n] == ENTRIES[slot.entry].0.as_bytes()[8..])
        {
            classes |= slot.class;
        }
    }
    classes & !STEM
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::words::normalize;

    #[test]
    fn entries_are_written_normalized() {
        for (entry, _) in ENTRIES {
            assert_eq!(normalize(entry), entry.as_bytes(), "{entry}");
        }
    }

    #[test]
    fn stems_are_at_least_key_bytes() {
        for (entry, c) in ENTRIES {
            assert!(c & STEM == 0 || entry.len() >= KEY, "{entry}");
        }
    }

    #[test]
    fn stems_match_inflections_and_words_match_only_themselves() {
        assert_ne!(classify(b"ignorez") & VERB, 0);
        assert_ne!(classify(b"instructions") & NOUN, 0);
        assert_eq!(classify(b"gitignore") & VERB, 0);
        assert_eq!(classify(b"alle") & WEAK, 0);
        assert_ne!(classify(b"n") & NEG, 0);
    }
}
