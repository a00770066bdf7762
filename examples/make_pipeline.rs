//! The hello/world build of a makefile, run the way `make -j3` would run it:
//!
//! ```make
//! all: hello.out world.out
//!         cat hello.out world.out > all
//! hello.out: hello
//!         ./hello > hello.out
//! hello: hello.o
//!         cc -o hello hello.o
//! hello.o: hello.c
//!         cc -c hello.c
//! # ... and the same for world
//! ```
//!
//! Each target is a module; the artifacts flow along the edges as typed outputs. At the end the
//! example prints the run's report and the graph in Graphviz DOT, coloured by the run's states
//! (`cargo run --example make_pipeline | sed -n '/^digraph/,$p' | dot -Tsvg > build.svg`).

use std::thread::sleep;
use std::time::Duration;

use jobpool::{Context, Dag, Pool, TaskResult};

/// What each build step "takes", so the overlap shows in the report.
const STEP: Duration = Duration::from_millis(20);

/// A compiled object file.
struct Object {
    source: String,
}

/// A linked program.
struct Program {
    name: String,
    objects: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dag = Dag::new();
    for word in ["hello", "world"] {
        let compile = format!("{word}.o");
        let link = word.to_owned();
        let run = format!("{word}.out");

        dag.module(
            compile.clone(),
            1,
            [move |_: &Context| -> TaskResult<Object> {
                println!("cc -c {word}.c");
                sleep(STEP);
                Ok(Object {
                    source: format!("{word}.c"),
                })
            }],
        )?;

        let object = compile.clone();
        dag.module(
            link.clone(),
            1,
            [move |ctx: &Context| -> TaskResult<Program> {
                let objects: Vec<String> = ctx
                    .output::<Object>(&object)?
                    .iter()
                    .map(|o| o.source.replace(".c", ".o"))
                    .collect();
                println!("cc -o {word} {}", objects.join(" "));
                sleep(STEP);
                Ok(Program {
                    name: word.to_owned(),
                    objects,
                })
            }],
        )?
        .after([compile])?;

        let program = link.clone();
        dag.module(
            run,
            1,
            [move |ctx: &Context| -> TaskResult<String> {
                let program = &ctx.output::<Program>(&program)?[0];
                println!(
                    "./{} > {}.out   (linked from {})",
                    program.name,
                    program.name,
                    program.objects.join(", ")
                );
                sleep(STEP);
                Ok(program.name.clone())
            }],
        )?
        .after([link])?;
    }
    dag.module(
        "all",
        1,
        [|ctx: &Context| -> TaskResult<String> {
            let hello = &ctx.output::<String>("hello.out")?[0];
            let world = &ctx.output::<String>("world.out")?[0];
            println!("cat hello.out world.out > all");
            sleep(STEP);
            Ok(format!("{hello} {world}"))
        }],
    )?
    .after(["hello.out", "world.out"])?;

    let pool = Pool::new(3); // make -j3
    let report = dag.run(&pool)?;
    println!("\nend state: {:?}\n", report.output::<String>("all")?[0]);
    println!("{report}\n");
    print!("{}", dag.to_dot(Some(&report)));
    assert!(report.is_success());
    Ok(())
}
