//! Hostile: an agent whose `describe()` never returns. It must be
//! quarantined once its fuel or time runs out.

use warren_sdk::{Agent, AgentContext, AgentInfo, Error, Reply};

struct DescribeLoop;

impl Agent for DescribeLoop {
    type Input = ();
    type Output = ();

    fn describe() -> AgentInfo {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn invoke(_ctx: &AgentContext, _input: ()) -> Result<Reply<()>, Error> {
        Ok(Reply::new(()))
    }
}

warren_sdk::export_agent!(DescribeLoop);
