//! Offline tests of the recipe's pieces; `tests/corpus_cli.rs` runs the whole command against a
//! real Debian package.

use std::io::Write;

use super::*;

fn row(genre: &str, package: &str, path: &str, member: Option<&str>, seconds: Option<f64>) -> RecipeRow {
    RecipeRow {
        line: 2,
        genre: genre.into(),
        package: package.into(),
        path: path.into(),
        member: member.map(String::from),
        seconds,
        licence: "GPL-2+".into(),
        note: String::new(),
    }
}

fn options(genres: Option<&[&str]>, min_seconds: Option<f64>, skip: &[&str]) -> CorpusOptions {
    CorpusOptions {
        recipe: "r.tsv".into(),
        out: "o".into(),
        downloads: None,
        genres: genres.map(|g| g.iter().map(|s| s.to_string()).collect()),
        min_seconds,
        skip_packages: skip.iter().map(|s| s.to_string()).collect(),
        progress: false,
    }
}

#[test]
fn filters_select_rows_and_name_unknown_genres() {
    let rows = vec![
        row("cn", "a", "x/1.ogg", None, Some(100.0)),
        row("edm", "b", "x/2.ogg", None, Some(30.0)),
        row("edm", "c", "x/3.ogg", None, None),
    ];
    let names = output_names(&rows);
    let picked = |o: &CorpusOptions| {
        let (selected, left) = select(&rows, &names, o).expect("valid");
        (selected.iter().map(|(r, _)| r.package.as_str()).collect::<Vec<_>>(), left)
    };
    assert_eq!(picked(&options(None, None, &[])), (vec!["a", "b", "c"], 0));
    assert_eq!(picked(&options(Some(&["edm"]), Some(45.0), &[])), (vec!["c"], 2));
    assert_eq!(picked(&options(None, None, &["a"])), (vec!["b", "c"], 1));
    let error = select(&rows, &names, &options(Some(&["jazz"]), None, &[])).unwrap_err().to_string();
    assert!(error.contains("`jazz`") && error.contains("cn, edm"), "{error}");
    assert!(select(&rows, &names, &options(None, Some(f64::NAN), &[])).is_err());
}

#[test]
fn tracks_and_zip_members_are_copied_with_their_hash() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("usr/share/game")).unwrap();
    std::fs::write(work.join("usr/share/game/plain.ogg"), b"abc").unwrap();
    let mut writer = zip::ZipWriter::new(std::fs::File::create(work.join("usr/share/game/music.pk3")).unwrap());
    let deflated = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("sound/cdtracks/t.ogg", deflated).unwrap();
    writer.write_all(&[7u8; 5000]).unwrap();
    writer.finish().unwrap();

    let dest = dir.path().join("plain.ogg");
    let (hash, bytes) = copy_track(&row("edm", "p", "usr/share/game/plain.ogg", None, None), &work, &dest).unwrap();
    assert_eq!((hash.as_str(), bytes), ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 3));
    assert_eq!(std::fs::read(&dest).unwrap(), b"abc");

    let member = row("edm", "p", "usr/share/game/music.pk3", Some("sound/cdtracks/t.ogg"), None);
    let dest = dir.path().join("t.ogg");
    let (hash, bytes) = copy_track(&member, &work, &dest).unwrap();
    assert_eq!((hash, bytes), (sha256_file(&dest).unwrap(), 5000));
    assert_eq!(std::fs::read(&dest).unwrap(), vec![7u8; 5000]);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().ends_with(".partial")), "{leftovers:?}");

    let missing = row("edm", "p", "usr/share/game/music.pk3", Some("sound/none.ogg"), None);
    let error = copy_track(&missing, &work, &dir.path().join("n.ogg")).unwrap_err();
    assert!(error.contains("sound/none.ogg is not in usr/share/game/music.pk3"), "{error}");
    let error = copy_track(&row("edm", "p", "usr/none.ogg", None, None), &work, &dir.path().join("m.ogg")).unwrap_err();
    assert_eq!(error, "usr/none.ogg is not in the package");
    let not_zip = row("edm", "p", "usr/share/game/plain.ogg.zip", Some("a.ogg"), None);
    std::fs::copy(work.join("usr/share/game/plain.ogg"), work.join("usr/share/game/plain.ogg.zip")).unwrap();
    assert!(copy_track(&not_zip, &work, &dir.path().join("z.ogg")).unwrap_err().contains("not a readable zip"));
}

#[test]
fn a_bad_recipe_fetches_nothing_and_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.tsv");
    std::fs::write(&recipe, "genre\tpackage\tpath\ncn\tBAD\tx.ogg\nedm\tok-pkg\t/abs.ogg\n").unwrap();
    let mut o = options(None, None, &[]);
    o.recipe = recipe;
    o.out = dir.path().join("out");
    let error = build_corpus(&o).unwrap_err().to_string();
    assert!(error.contains("2 problem(s)") && error.contains("line 2") && error.contains("line 3"), "{error}");
    assert!(!o.out.exists(), "nothing may be created for a bad recipe");
}

#[test]
fn identical_files_are_kept_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("orchestral")).unwrap();
    let mut entries = BTreeMap::new();
    for (name, hash) in
        [("orchestral/w--Apnee.ogg", "aa"), ("orchestral/w--Apnee2.ogg", "aa"), ("orchestral/w--b.ogg", "bb")]
    {
        std::fs::write(dir.path().join(name), hash).unwrap();
        let mut entry = entry_for(&row("orchestral", "w", name, None, Some(1.0)), name, (hash.into(), 2), "1", None);
        entry.file = name.into();
        entries.insert(name.to_string(), entry);
    }
    mark_duplicates(&mut entries, dir.path()).unwrap();
    let marked: Vec<Option<&str>> = entries.values().map(|e| e.duplicate_of.as_deref()).collect();
    assert_eq!(marked, [None, Some("orchestral/w--Apnee.ogg"), None]);
    assert!(!dir.path().join("orchestral/w--Apnee2.ogg").exists());
    assert!(dir.path().join("orchestral/w--Apnee.ogg").exists());
}
